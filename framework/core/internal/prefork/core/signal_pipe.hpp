// The self-pipe trick: signal handlers only write the signal's number to a
// non-blocking pipe; the event loop (poll or epoll) reads it and does the
// real work. One SignalPipe per process at a time.
#pragma once

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

  // Holds this pipe's signals blocked while it lives: around fork(), so that
  // a signal cannot run the inherited handler in the child before the child
  // has abandoned the pipe (it would land in the parent's pipe as if sent to
  // the parent). The child calls restore() once it has abandoned the pipe.
  class Blocked {
   public:
    explicit Blocked(const SignalPipe& pipe) noexcept;
    ~Blocked() { restore(); }
    Blocked(const Blocked&) = delete;
    Blocked& operator=(const Blocked&) = delete;
    void restore() noexcept;

   private:
    sigset_t previous_;
    bool restored_ = false;
  };

 private:
  std::vector<int> signals_;
  int read_fd_ = -1;
  int write_fd_ = -1;
};

}  // namespace prefork
