// The scoreboard's segment for its writers: the master creates it (and
// folds dead workers in), a spawned worker attaches to its own slot.
#pragma once

#include <prefork/core/scoreboard_layout.hpp>
#include <prefork/listener.hpp>

#include <memory>
#include <span>
#include <string>
#include <type_traits>

namespace prefork {

// The master's segment: created at start, removed when destroyed.
class Scoreboard {
 public:
  // For the master. Replaces a stale segment whose master is dead; throws
  // std::runtime_error when a live master still owns the name, or when there
  // are more than scoreboard_max_listeners listeners.
  static Scoreboard create(const std::string& name, unsigned slot_count,
                           std::span<const Listener> listeners = {});

  Scoreboard(Scoreboard&&) noexcept;
  Scoreboard& operator=(Scoreboard&&) noexcept;
  ~Scoreboard();

  const std::string& name() const noexcept;
  Header& header() noexcept;
  Slot& slot(unsigned index) noexcept;
  unsigned slot_count() const noexcept;

  // After the slot's worker has been reaped: folds its counters and
  // histogram into the retired totals and clears the slot, atomically for
  // readers.
  void retire(unsigned index) noexcept;
  // The binary upgrade (framework/src/binary_upgrade.hpp). The new master
  // creates its segment under a name of its own and, once it serves, takes
  // the old one's name in one step (rename(2) in /dev/shm, where Linux keeps
  // POSIX shared memory): a reader never finds the name missing, and an
  // upgrade that fails leaves the old segment where it was. Throws
  // SystemError naming rename.
  void take_name(const std::string& name);
  // The old master, once the new one took the name: its exit must not
  // remove the new master's segment.
  void disown_name() noexcept;

  // In a forked worker, before it runs: leaves writable only what the
  // worker of `slot` writes (its slot, the accept lock's page); the rest of
  // the header and the other slots become read-only, so that a wild write
  // kills the worker instead of corrupting what the master relies on.
  void protect_for_worker(unsigned slot) noexcept;

  // The master's periodic figures: each listener's accept queue.
  void publish_queue(unsigned listener, std::uint32_t depth, std::uint32_t limit) noexcept;

  // The master's accesses to the segment (its stores, its reads of the
  // workers' slots; retire() and publish_queue() use it): when a process of
  // the master's user truncates the segment, the SIGBUS costs the access
  // (false), not the master. The segment then gets its size back, zero-filled
  // where it was cut, so that the workers' writes stop faulting too: its
  // figures are lost, and readers report it corrupt (its magic is gone).
  template <class Access>
  bool access(Access&& body) noexcept {
    using A = std::remove_reference_t<Access>;
    return access([](void* a) { (*static_cast<A*>(a))(); }, &body);
  }
  bool access(void (*body)(void*), void* context) noexcept;

 private:
  void fold_in(unsigned index) noexcept;  // retire(), unguarded
  struct Impl;
  explicit Scoreboard(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

// A spawned worker's view of the segment: read-write only its own slot and
// the accept lock (see Scoreboard::protect_for_worker).
class SlotAttachment {
 public:
  // Throws std::runtime_error when the segment is missing or mismatched.
  static SlotAttachment open(const std::string& name, unsigned slot);
  SlotAttachment(SlotAttachment&&) noexcept;
  ~SlotAttachment();
  Slot& slot() noexcept;
  Header& header() noexcept;

 private:
  struct Impl;
  explicit SlotAttachment(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefork
