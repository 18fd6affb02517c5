// The self-pipe trick: signal handlers only write the signal's number to a
// non-blocking pipe; the event loop (poll or epoll) reads it and does the
// real work. One SignalPipe per process at a time.
#pragma once

#include <prefork/core/signals_held.hpp>

#include <signal.h>

#include <initializer_list>
#include <vector>

namespace prefork {

class SignalPipe {
 public:
  // Installs handlers for `signals`; throws SystemError.
  explicit SignalPipe(std::initializer_list<int> signals) : SignalPipe(std::vector<int>(signals)) {}
  explicit SignalPipe(std::vector<int> signals);
  ~SignalPipe();
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  // The read end, to wait on.
  int fd() const noexcept { return read_fd_; }
  // The next signal received, or 0 when none is pending.
  int next() noexcept;

  // In a forked child: put the dispositions back to default and close the
  // pipe, so the child never wakes the parent's loop.
  void abandon_in_child() noexcept;

  // Holds this pipe's signals blocked while it lives: around fork(), until
  // the child has abandoned the pipe (signals_held.hpp).
  class Blocked : public SignalsHeld {
   public:
    explicit Blocked(const SignalPipe& pipe) noexcept : SignalsHeld(pipe.signals_) {}
  };

 private:
  std::vector<int> signals_;
  int read_fd_ = -1;
  int write_fd_ = -1;
};

}  // namespace prefork
