// The models other than `event`: Stevens' designs (UNP ch. 30) over the same
// handler. Each worker process runs one of these loops; the master, the
// scoreboard and graceful stop are the same as for the event model.
//   iterative, prefork:     one connection at a time, in this process
//   fork-per-connection:    a child process per connection (or datagram)
//   thread-per-connection:  a thread per connection (or datagram)
//   prethreaded:            a fixed pool of threads taking turns (lock) or
//                           fed by one accepting thread (main)
//   hybrid:                 per process, one accepting thread and a pool
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <prefork/core/trace.hpp>
#include <prefork/log.hpp>

#include "blocking_connection.hpp"
#include "work_source.hpp"
#include "worker.hpp"

namespace prefork {

namespace {

class BlockingRuntime final : public Runtime {
 public:
  explicit BlockingRuntime(const WorkerSetup& setup)
      : setup_(setup),
        // Threads and per-connection children share the slot.
        stats_(setup.slot, facts(setup.params.model).shared_writers, setup.params.worker_stats),
        stream_{.handler = setup.handler,
                .stats = stats_,
                .max_message = setup.params.max_message,
                .worker_slot = setup.info.slot,
                .timeouts = listener_timeouts(setup.params, setup.listeners.size())},
        context_{.stream = stream_,
                 .stop_fds = {stop_.fd(), -1},
                 .fast_fds = {stop_.fast_fd(), -1},
                 // A one-thread worker may sleep on a connection; in the
                 // others, connections are served beside the accepting
                 // thread, which wakes anyway.
                 .reopen_fd = facts(setup.params.model).shared_writers ? -1 : stop_.reopen_fd(),
                 .whole = dynamic_cast<ConnectionHandler*>(&setup.handler)} {
    stats_.retire_after(setup.params.max_requests);
    cap_ = connection_cap(setup.params.model, setup.params.accept, setup.params.max_connections,
                          setup.params.threads);
    if (setup.params.accept == Accept::lock)
      gate_ = setup.params.model == Model::prethreaded ? make_thread_lock_gate()
                                                       : make_process_lock_gate(setup.accept_lock);
    else if (setup.params.accept == Accept::flock)
      gate_ = make_flock_gate("/dev/shm/" + setup.params.stats_name);
  }

  int serve() override {
    switch (setup_.params.model) {
      case Model::fork_per_connection:
        return fork_per_connection();
      case Model::thread_per_connection:
        return thread_per_connection();
      case Model::prethreaded:
        return setup_.params.accept == Accept::main ? accepting_thread_and_pool()
                                                    : pool_taking_turns();
      case Model::hybrid:
        return accepting_thread_and_pool();
      default:
        return one_at_a_time();
    }
  }

  bool left_threads_serving() const noexcept override { return left_threads_serving_; }

 private:
  std::unique_ptr<WorkSource> make_source(AcceptGate* gate) {
    return std::make_unique<WorkSource>(setup_.listeners, setup_.params.accept, gate, stop_,
                                        setup_.handler, stats_, setup_.info.slot, setup_.channel,
                                        setup_.params.max_message);
  }

  void serve(Work& work, WorkSource& source, ConnectionBuffers& buffers) {
    if (work.kind == Work::Kind::connection) {
      serve_blocking(context_, std::move(work.fd), work.peer,
                     setup_.listeners[work.listener].protocol, work.listener, buffers);
    } else if (work.kind == Work::Kind::datagram) {
      work.service->handle(source.datagram_buffer(), work.length);
    }
    if (work.kind == Work::Kind::connection) source.ready_for_more();
    if (stats_.beat()) trim_heap_if_grown();
  }

  // iterative and prefork: Stevens' figure 30.9 loop; also the loop of each
  // thread of prethreaded --accept lock, which take turns at the gate.
  int one_at_a_time() {
    auto source = make_source(gate_.get());
    ConnectionBuffers buffers;
    for (Work work = source->next(); work.kind != Work::Kind::stop; work = source->next())
      serve(work, *source, buffers);
    return 0;
  }

  // --trace: what a fork-per-connection child serves.
  static const char* child_kind(const Work& work) noexcept {
    return work.kind == Work::Kind::connection ? "connection" : "datagram";
  }

  int fork_per_connection() {
    auto source = make_source(nullptr);
    ConnectionBuffers buffers;
    // The kernel reaps the children as they end (SA_NOCLDWAIT): no zombie
    // waits for the next connection, and no SIGCHLD has to wake this loop
    // (one arriving just before a blocking accept() would be missed).
    struct sigaction no_zombies {};
    struct sigaction previous {};
    no_zombies.sa_handler = SIG_DFL;
    no_zombies.sa_flags = SA_NOCLDWAIT;
    if (::sigaction(SIGCHLD, &no_zombies, &previous) != 0) log_sys_error("sigaction", errno);
    const pid_t worker = ::getpid();
    // One pidfd per child serving a connection: readable once it ends,
    // which SA_NOCLDWAIT would otherwise hide (the --max-connections cap).
    std::vector<UniqueFd> children;
    for (Work work = next_below_cap(*source, children); work.kind != Work::Kind::stop;
         work = next_below_cap(*source, children)) {
      // The connection's number is taken here: each child numbers only its
      // own, from the count it was forked with.
      const std::uint64_t number = stream_.connections.fetch_add(1, std::memory_order_relaxed);
      // Each connection (or datagram) taken is a request here, counted
      // before the child can answer it.
      stats_.count_toward_retire();
      StopSignal::Held held;
      pid_t child = ::fork();
      if (child == 0) {
        children.clear();  // its siblings' are not its business
        stream_.connections.store(number, std::memory_order_relaxed);
        // Its own signals end its own connection (worker_signals.hpp).
        const auto own = stop_.become_connection_child();
        context_.stop_fds[1] = own[0];
        context_.fast_fds[1] = own[1];
        held.restore();
        // Its worker counts its connections toward --max-requests, and is
        // the one the heartbeat watches.
        stats_.retire_after(0);
        stats_.leave_waits_to_the_worker();
        // The connection dies with its worker, as a thread model's does: a
        // worker killed (at the end of a graceful timeout, or by anyone)
        // must not leave its children holding clients and listeners.
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
          log_sys_error("prctl(PR_SET_PDEATHSIG)", errno);
        if (::getppid() != worker) ::_exit(0);  // it died before prctl
        // The handler's own children are reaped as usual.
        if (::sigaction(SIGCHLD, &previous, nullptr) != 0) log_sys_error("sigaction", errno);
        // As ForkingTCPServer: the child serves and _exit()s; it never
        // comes back into this loop. It must not keep the TCP listeners
        // open after the parent has stopped (a UDP reply is sent on its
        // listener, which the child therefore keeps).
        for (const Listener& listener : setup_.listeners)
          if (listener.protocol != Protocol::datagram) ::close(listener.fd.get());
        try {
          serve(work, *source, buffers);
        } catch (const std::exception& e) {
          log_info("connection child failed: %s", e.what());
        }
        trace("exit: %s child, status 0", child_kind(work));
        ::_exit(0);
      }
      held.restore();
      // The child has its own copy: ours would hold the connection open
      // after the child closes it.
      work.fd.reset();
      if (child < 0) {
        log_sys_error("fork", errno, "for a connection");
        stats_.error(ErrorKind::other, work.listener);
        continue;
      }
      trace("fork: %s child -> pid %d", child_kind(work), static_cast<int>(child));
      if (work.kind == Work::Kind::connection) {
        // ESRCH: it has already ended (and been reaped).
        UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
        if (pidfd)
          children.push_back(std::move(pidfd));
        else if (errno != ESRCH)
          log_sys_error("pidfd_open", errno, "for connection child %d", static_cast<int>(child));
      }
    }
    // They finish their requests first: with SA_NOCLDWAIT, waitpid() fails
    // with ECHILD once every child has ended (leaving sooner would kill them,
    // which is what a fast stop does: PR_SET_PDEATHSIG).
    while (!StopSignal::fast() && (::waitpid(-1, nullptr, 0) >= 0 || errno == EINTR)) {
    }
    if (!StopSignal::fast() && errno != ECHILD) log_sys_error("waitpid", errno);
    if (::sigaction(SIGCHLD, &previous, nullptr) != 0) log_sys_error("sigaction", errno);
    return 0;
  }

  // fork-per-connection: the next work once fewer than the cap of
  // `children` serve connections; a stop while at the cap ends the wait.
  Work next_below_cap(WorkSource& source, std::vector<UniqueFd>& children) {
    std::vector<pollfd> polled;
    while (children.size() >= cap_ && !stop_.requested()) {
      polled.assign(1, pollfd{stop_.fd(), POLLIN, 0});
      for (const UniqueFd& child : children) polled.push_back({child.get(), POLLIN, 0});
      if (::poll(polled.data(), polled.size(), 1000) < 0 && errno != EINTR)
        log_sys_error("poll", errno, "on the connection children");
      std::size_t kept = 0;
      for (std::size_t i = 0; i < children.size(); ++i)
        if (polled[i + 1].revents == 0) children[kept++] = std::move(children[i]);
      children.resize(kept);
      stats_.beat();  // at the cap, not stuck
    }
    return source.next();
  }

  int thread_per_connection() {
    auto source = make_source(nullptr);
    // Members, not locals: after a fast stop the threads outlive this call.
    auto& [mutex, finished, running, connections] = connection_threads_;
    for (;;) {
      {
        // At the cap: wait for a connection to end instead of accepting
        // (the rest wait in the kernel's backlog); the stop is looked at
        // each second, and the heartbeat kept.
        std::unique_lock lock(mutex);
        while (connections >= cap_ && !stop_.requested()) {
          finished.wait_for(lock, std::chrono::seconds(1));
          stats_.beat();
        }
      }
      Work work = source->next();
      if (work.kind == Work::Kind::stop) break;
      // A datagram and its sender are in the source's buffers, which the
      // next receive overwrites: the thread needs its own copies.
      const bool is_datagram = work.kind == Work::Kind::datagram;
      std::string datagram(source->datagram_buffer(), is_datagram ? work.length : 0);
      if (is_datagram) work.peer = work.service->peer();
      {
        std::lock_guard lock(mutex);
        ++running;
        if (!is_datagram) ++connections;
      }
      try {
        StopSignal::thread_without_signals([this, is_datagram, work = std::move(work),
                                            datagram = std::move(datagram)]() mutable {
          if (work.kind == Work::Kind::datagram) {
            DatagramService service(setup_.listeners[work.listener].fd.get(), work.listener,
                                    setup_.handler, stats_, setup_.info.slot);
            service.set_peer(work.peer);
            service.handle(datagram.data(), datagram.size());
          } else {
            ConnectionBuffers buffers;
            serve_blocking(context_, std::move(work.fd), work.peer,
                           setup_.listeners[work.listener].protocol, work.listener, buffers);
          }
          auto& [mutex, finished, running, connections] = connection_threads_;
          std::lock_guard lock(mutex);
          --running;
          if (!is_datagram) --connections;
          if (running == 0 || !is_datagram) finished.notify_all();
        }).detach();
      } catch (const std::system_error& e) {
        // Out of threads: this one connection is dropped, the rest served.
        log_info("cannot start a thread for a connection: %s", e.what());
        stats_.error(ErrorKind::other, work.listener);
        std::lock_guard lock(mutex);
        --running;
        if (!is_datagram) --connections;
      }
    }
    std::unique_lock lock(mutex);
    if (StopSignal::fast()) {
      left_threads_serving_ = running > 0;
      return 0;
    }
    // (Named again: clang before 16, which builds the fuzz targets, cannot
    // capture a structured binding.)
    const unsigned& left = running;
    finished.wait(lock, [&left] { return left == 0; });
    return 0;
  }

  // prethreaded --accept lock: every thread takes turns at accept. This
  // thread waits for the stop (the others block the signals, so that this
  // one takes them) and, unless it is a fast one, for the threads.
  int pool_taking_turns() {
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < thread_count(); ++i)
      threads.push_back(
          StopSignal::thread_without_signals([this] { guarded([this] { one_at_a_time(); }); }));
    pollfd stop{stop_.fd(), POLLIN, 0};
    while (!stop_.requested()) {
      if (::poll(&stop, 1, 1000) < 0 && errno != EINTR) log_sys_error("poll", errno);
      StopSignal::reopen_log_if_asked();
    }
    return finish_pool(threads);
  }

  // prethreaded --accept main, and hybrid: this thread accepts (taking turns
  // with the other processes by the strategy) and queues; the pool serves.
  // It accepts only for a thread that is idle, so that the rest wait in the
  // kernel's backlog, where another process can take them.
  int accepting_thread_and_pool() {
    // Members, not locals: after a fast stop the threads outlive this call.
    PoolQueue& pool = pool_queue_;
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < thread_count(); ++i)
      threads.push_back(StopSignal::thread_without_signals([this, &pool] {
        ConnectionBuffers buffers;
        for (;;) {
          Work work;
          {
            std::unique_lock lock(pool.mutex);
            ++pool.idle;
            pool.room.notify_one();
            pool.work_ready.wait(lock, [&] { return pool.closing || !pool.queue.empty(); });
            --pool.idle;
            if (pool.queue.empty()) return;
            work = std::move(pool.queue.front());
            pool.queue.pop_front();
          }
          serve_blocking(context_, std::move(work.fd), work.peer,
                         setup_.listeners[work.listener].protocol, work.listener, buffers);
        }
      }));

    auto source = make_source(setup_.params.model == Model::hybrid ? gate_.get() : nullptr);
    for (;;) {
      {
        std::unique_lock lock(pool.mutex);
        // A connection for an idle thread, and below the cap: busy threads
        // and those a queued connection will wake.
        pool.room.wait(lock, [&] {
          return (pool.queue.size() < pool.idle &&
                  thread_count() - pool.idle + pool.queue.size() < cap_) ||
                 stop_.requested();
        });
      }
      Work work = source->next();
      if (work.kind == Work::Kind::stop) break;
      if (work.kind == Work::Kind::datagram) {
        work.service->handle(source->datagram_buffer(), work.length);  // cheap: inline
        continue;
      }
      {
        std::lock_guard lock(pool.mutex);
        pool.queue.push_back(std::move(work));
      }
      pool.work_ready.notify_one();
    }
    {
      std::lock_guard lock(pool.mutex);
      // What is queued was accepted: it is served first, unless the stop
      // is a fast one.
      if (StopSignal::fast()) pool.queue.clear();
      pool.closing = true;
    }
    pool.work_ready.notify_all();
    return finish_pool(threads);
  }

  // After a graceful stop, waits for the pool's threads; after a fast one,
  // leaves them (the process is about to exit: left_threads_serving()).
  int finish_pool(std::vector<std::thread>& threads) {
    if (StopSignal::fast()) {
      for (auto& thread : threads) thread.detach();
      left_threads_serving_ = !threads.empty();
      return 0;
    }
    for (auto& thread : threads) thread.join();
    return 0;
  }

  unsigned thread_count() const { return setup_.params.threads; }

  // A pool thread's body: an exception must not std::terminate the worker
  // with connections in flight; it stops the worker in order instead (the
  // master starts a new one).
  template <typename Body>
  void guarded(Body&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      log_info("worker thread failed: %s; stopping this worker", e.what());
      stop_.request();
    }
  }

  // What the connection threads of thread-per-connection share.
  struct ConnectionThreads {
    std::mutex mutex;
    std::condition_variable finished;
    unsigned running = 0;      // threads, for connections and datagrams
    unsigned connections = 0;  // of them, serving connections (the cap)
  };
  // The queue from the accepting thread to the pool.
  struct PoolQueue {
    std::mutex mutex;
    // Two conditions, each signalled to one waiter: a queued connection
    // wakes one pool thread, a pool thread turning idle wakes the accepting
    // one (one condition for both, with notify_all, woke every idle thread
    // for every connection).
    std::condition_variable work_ready;
    std::condition_variable room;
    std::deque<Work> queue;
    bool closing = false;
    std::size_t idle = 0;  // pool threads waiting for a connection
  };

  const WorkerSetup& setup_;
  ConnectionThreads connection_threads_;
  PoolQueue pool_queue_;
  bool left_threads_serving_ = false;
  unsigned cap_ = 0;  // connection_cap(): the most connections held at once
  StopSignal stop_;
  SlotWriter stats_;
  StreamContext stream_;
  BlockingContext context_;
  std::unique_ptr<AcceptGate> gate_;
};

}  // namespace

std::unique_ptr<Runtime> make_blocking_runtime(const WorkerSetup& setup) {
  return std::make_unique<BlockingRuntime>(setup);
}

}  // namespace prefork
