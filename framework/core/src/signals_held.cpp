#include <prefork/core/signals_held.hpp>

#include <pthread.h>

namespace prefork {

SignalsHeld::SignalsHeld(std::span<const int> signals) noexcept {
  sigset_t set;
  ::sigemptyset(&set);
  for (int number : signals) ::sigaddset(&set, number);
  ::pthread_sigmask(SIG_BLOCK, &set, &previous_);
}

void SignalsHeld::restore() noexcept {
  if (restored_) return;
  restored_ = true;
  ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

}  // namespace prefork
