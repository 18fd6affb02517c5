// systemd's service notification protocol (sd_notify(3)), by hand: one
// datagram of newline-separated KEY=VALUE lines to the AF_UNIX socket named
// by $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
//
// Why not libsystemd's sd_notify(): the protocol is a few lines, documented
// and stable since systemd's first releases; linking libsystemd would make
// every embedder of prefork depend on it (and its -dev package) for one
// sendto(). Every call here is a no-op when NOTIFY_SOCKET is unset, so a
// server started by hand behaves exactly as before.
#pragma once

#include <sys/types.h>

#include <string_view>

namespace prefork::systemd {

// Sends `state` as one datagram. True when it was sent or NOTIFY_SOCKET is
// unset; false after logging the failing call (the service goes on: a
// notification is advice, not a reason to stop serving).
bool notify(std::string_view state);

bool notify_ready();                        // READY=1: every worker has reported ready
bool notify_reloading();                    // RELOADING=1 with MONOTONIC_USEC (Type=notify-reload)
bool notify_stopping();                     // STOPPING=1: a stop began
bool notify_status(std::string_view text);  // STATUS=<text>, one line

// Sends READY=1 once, the first time the pool's every seat has a ready
// worker. The master calls check() from its loop.
class ReadyNotifier {
 public:
  // `main_pid`: announced with it (MAINPID=), as a binary upgrade's new
  // master must be, in the same datagram; 0: not.
  void check(unsigned ready, unsigned wanted, pid_t main_pid = 0);
  bool sent() const noexcept { return sent_; }

 private:
  bool sent_ = false;
};

}  // namespace prefork::systemd
