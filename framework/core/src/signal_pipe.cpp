#include <prefork/core/signal_pipe.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <prefork/error.hpp>

namespace prefork {

namespace {
volatile sig_atomic_t write_end = -1;

extern "C" void on_signal(int number) {
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(number);
  // A full pipe drops the byte: the loop is already awake with signals queued.
  [[maybe_unused]] ssize_t ignored = ::write(write_end, &byte, 1);
  errno = saved;
}

void restore_defaults(const std::vector<int>& signals) noexcept {
  for (int number : signals) ::signal(number, SIG_DFL);
}
}  // namespace

SignalPipe::SignalPipe(std::vector<int> signals) : signals_(std::move(signals)) {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw SystemError("pipe2", errno);
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  write_end = write_fd_;

  struct sigaction action {};
  action.sa_handler = on_signal;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int number : signals_) {
    int flags = number == SIGCHLD ? SA_RESTART | SA_NOCLDSTOP : SA_RESTART;
    action.sa_flags = flags;
    if (::sigaction(number, &action, nullptr) != 0) {
      int error = errno;
      // A real-time signal a tool reserved for itself (valgrind does):
      // nobody can send it to us anyway.
      if (error == EINVAL && number >= SIGRTMIN) continue;
      restore_defaults(signals_);
      ::close(read_fd_);
      ::close(write_fd_);
      throw SystemError("sigaction", error, ::strsignal(number));
    }
  }
  // Unblock in case our parent left them blocked (the mask survives exec).
  sigset_t set;
  ::sigemptyset(&set);
  for (int number : signals_) ::sigaddset(&set, number);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

SignalPipe::~SignalPipe() { abandon_in_child(); }

void SignalPipe::abandon_in_child() noexcept {
  if (read_fd_ < 0) return;
  restore_defaults(signals_);
  write_end = -1;
  ::close(read_fd_);
  ::close(write_fd_);
  read_fd_ = write_fd_ = -1;
}

int SignalPipe::next() noexcept {
  unsigned char byte = 0;
  ssize_t n = ::read(read_fd_, &byte, 1);
  return n == 1 ? byte : 0;
}

}  // namespace prefork
