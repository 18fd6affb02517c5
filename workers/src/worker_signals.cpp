#include "worker_signals.hpp"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include <prefork/log.hpp>

namespace prefork {

namespace {

constexpr int ignored_signals[] = {SIGHUP,  SIGUSR2, SIGWINCH, SIGALRM, SIGURG,  SIGVTALRM,
                                   SIGPROF, SIGIO,   SIGPWR,   SIGXCPU, SIGXFSZ, SIGSTKFLT,
                                   SIGPIPE, SIGTSTP, SIGTTIN,  SIGTTOU};

void ignore(int number) noexcept {
  struct sigaction action {};
  action.sa_handler = SIG_IGN;
  ::sigemptyset(&action.sa_mask);
  if (::sigaction(number, &action, nullptr) != 0)
    log_sys_error("sigaction", errno, "ignoring %s", ::strsignal(number));
}

}  // namespace

void ignore_signals_without_meaning() noexcept {
  for (int number : ignored_signals) ignore(number);
  // SIGRTMIN is a function in glibc: it skips those the C library keeps.
  for (int number = SIGRTMIN; number <= SIGRTMAX; ++number) ignore(number);
}

}  // namespace prefork
