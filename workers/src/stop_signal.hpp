// Stopping the blocking models. Their workers sleep in accept(), poll() or
// recv(), often in several threads: TERM/INT/QUIT set a flag and make an
// eventfd readable, which every sleeping poll() watches; the handlers are
// installed without SA_RESTART so that a blocking accept() returns EINTR.
#pragma once

#include <signal.h>

#include <atomic>
#include <thread>
#include <utility>

namespace prefork {

class StopSignal {
 public:
  StopSignal();  // one per process; throws SystemError
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // Readable (and stays readable) once a stop was asked.
  int fd() const noexcept { return fd_; }
  bool requested() const noexcept;
  // Ask for a stop from inside the process (e.g. the master is gone).
  void request() noexcept;

  // Starts a thread that never takes the stop signals, so that they go to
  // the accepting thread and interrupt its accept(). (The mask is set
  // before the thread exists: blocking them inside it would leave a window.)
  template <typename Function>
  static std::thread thread_without_signals(Function&& function) {
    sigset_t all, previous;
    block(all, previous);
    std::thread thread(std::forward<Function>(function));
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return thread;
  }

 private:
  static void block(sigset_t& set, sigset_t& previous) noexcept;
  int fd_ = -1;
};

}  // namespace prefork
