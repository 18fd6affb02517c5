// A service in the master's loop beside supervision: the --accept pass
// dispatcher, the --metrics endpoint, (later) the upgrade's watch on a new
// master. Each brings its descriptors to the one poll() and its deadline to
// the poll's timeout, and knows what to close in a forked worker; the loop
// never knows how many there are or where their entries sit.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <span>
#include <vector>

namespace prefork {

class MasterService {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~MasterService() = default;

  // What to wait on this turn: appended to `fds`.
  virtual void add_poll_fds(std::vector<pollfd>& fds) = 0;
  // After the poll: exactly the entries this service added, with revents.
  virtual void serve(std::span<const pollfd> polled) = 0;
  // When the loop must wake at the latest for this service.
  virtual std::optional<Clock::time_point> next_deadline() const = 0;
  // A graceful stop is coming (--drain-delay): still serving.
  virtual void on_drain() {}
  // The stop began: stop taking new work (the workers drain).
  virtual void on_stop() {}
  // A binary upgrade's new master serves from now on (this master drains):
  // give up what it took over.
  virtual void on_handed_over() {}
  // A child that is not a worker exited (reaped by the master): true when
  // it was this service's.
  virtual bool on_child_exit(pid_t /*pid*/, int /*status*/) { return false; }
  // The worker of `slot` is gone (reaped, or never started).
  virtual void on_slot_released(unsigned /*slot*/) {}
  // In a forked worker: these descriptors are the master's.
  virtual void close_in_child() noexcept {}
};

}  // namespace prefork
