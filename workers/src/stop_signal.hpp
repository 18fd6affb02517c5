// Stopping the blocking models. Their workers sleep in accept(), poll() or
// recv(), often in several threads: TERM/INT/QUIT set a flag and make an
// eventfd readable, which every sleeping poll() watches; the handlers are
// installed without SA_RESTART so that a blocking accept() returns EINTR.
#pragma once

#include <atomic>

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

  // For threads that must not take the signals (they go to the main thread,
  // which then sees EINTR in accept): call at the start of each new thread.
  static void block_in_this_thread() noexcept;

 private:
  int fd_ = -1;
};

}  // namespace prefork
