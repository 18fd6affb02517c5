// Holds signals blocked in the calling thread while it lives: around fork(),
// so that a signal cannot run an inherited handler in the child before the
// child has put its own in place (it would act as if sent to the parent),
// and around starting a thread, which inherits the mask. The master's
// SignalPipe and the blocking workers' StopSignal both hold theirs so.
#pragma once

#include <signal.h>

#include <span>

namespace prefork {

class SignalsHeld {
 public:
  explicit SignalsHeld(std::span<const int> signals) noexcept;
  ~SignalsHeld() { restore(); }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;
  // Puts the previous mask back now (the child, once ready); once only.
  void restore() noexcept;

 private:
  sigset_t previous_;
  bool restored_ = false;
};

}  // namespace prefork
