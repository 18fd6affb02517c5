// The signals of the blocking models (see worker_signals.hpp for what each
// signal means to a worker). Their workers sleep in accept(), poll() or
// recv(), often in several threads: TERM (graceful) and INT/QUIT (fast)
// set a flag and make the stop eventfd readable, which every sleeping
// poll() watches; a fast stop makes a second eventfd readable too, which a
// connection watches while it waits for the rest of a message. USR1 sets a
// flag that the loops look at when they wake (they wake at least once a
// second, or are interrupted), and makes a third eventfd readable, for a
// one-thread worker's connection, which would otherwise sleep through it.
// The handlers are installed without SA_RESTART so that a blocking
// accept() returns EINTR.
#pragma once

#include <prefork/core/signals_held.hpp>
#include <prefork/unique_fd.hpp>

#include <signal.h>

#include <array>
#include <atomic>
#include <span>
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
  int fd() const noexcept { return fd_.get(); }
  // Readable once a fast stop (INT, QUIT) was asked.
  int fast_fd() const noexcept { return fast_fd_.get(); }
  bool requested() const noexcept;
  // A fast stop: stop accepting and end every connection now, without
  // waiting for what is in flight.
  static bool fast() noexcept;
  // The signal that asked first (TERM, INT, QUIT); 0 for request().
  static int signal_number() noexcept;
  // Ask for a graceful stop from inside the process (e.g. the master is gone).
  void request() noexcept;

  // Readable once USR1 came; for one watcher (a one-thread worker's
  // connection), which then calls on_reopen_readable().
  int reopen_fd() const noexcept { return reopen_fd_.get(); }
  // USR1: calls reopen_log() if it was asked since the last call (by any
  // thread; one call reopens). For the loops, never the handler.
  static void reopen_log_if_asked();
  // The same after poll() found reopen_fd() readable: empties it first.
  static void on_reopen_readable(int fd);

  // In a fork-per-connection child, right after fork: its TERM/INT/QUIT end
  // its own connection only (they make the child's own eventfds readable,
  // no longer the worker's, which the child still watches: its worker's
  // stop reaches it too), and it ignores USR1 (it writes to the worker's
  // log for the life of one connection). Returns the child's eventfds,
  // {stop, fast}; -1 each if they cannot be made (logged: the child then
  // hears only its worker's stop).
  std::array<int, 2> become_connection_child() noexcept;

  // The worker's signals, and SIGCHLD: what Held holds.
  static std::span<const int> held_signals() noexcept;

  // Holds them blocked while it lives: around fork(), so that a signal
  // cannot reach the child before become_connection_child() (the inherited
  // handler would wake the worker as if it were signalled). The child calls
  // restore() once it is ready.
  class Held : public SignalsHeld {
   public:
    Held() noexcept : SignalsHeld(held_signals()) {}
  };

  // Starts a thread that never takes the worker's signals, so that they go
  // to the accepting thread and interrupt its accept(). (The mask is set
  // before the thread exists: blocking them inside it would leave a window.)
  template <typename Function>
  static std::thread thread_without_signals(Function&& function) {
    Held held;
    return std::thread(std::forward<Function>(function));
  }

 private:
  UniqueFd fd_, fast_fd_, reopen_fd_;
};

}  // namespace prefork
