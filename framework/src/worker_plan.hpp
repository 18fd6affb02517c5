// What each worker slot is given, by model and accept strategy: which
// listening sockets (the shared ones, or its own SO_REUSEPORT set), the
// channel to the master (pass), the accept lock, and how it serves. Built
// once by serve() and read by both start modes.
#pragma once

#include <prefork/listener.hpp>
#include <prefork/scoreboard.hpp>
#include <prefork/server.hpp>
#include <prefork/unique_fd.hpp>

#include <span>
#include <string>
#include <vector>

namespace prefork {

class WorkerPlan {
 public:
  // Opens the listeners; throws SystemError (e.g. bind) or
  // std::invalid_argument (a model/strategy pair that does not go together).
  explicit WorkerPlan(const ServerConfig& config);

  // After the scoreboard exists: the lock lives in its header.
  void attach(Scoreboard& scoreboard);

  Model model() const noexcept { return model_; }
  Accept accept() const noexcept { return accept_; }
  unsigned threads() const noexcept { return threads_; }
  unsigned workers() const noexcept { return workers_; }
  const std::string& lock_path() const noexcept { return lock_path_; }
  void* accept_lock() const noexcept { return accept_lock_; }

  // One per configured listener, for the `listening` lines.
  std::span<const Listener> announced() const noexcept { return sets_.front(); }
  std::span<Listener> listeners_for(unsigned slot) noexcept;
  // Every listening socket the master holds: one set, or one per slot
  // (reuseport); empty after close_all().
  std::span<const std::vector<Listener>> listener_sets() const noexcept { return sets_; }
  // pass: the worker's end of its channel (-1 otherwise).
  int worker_channel(unsigned slot) const noexcept;
  // pass: the master's ends, one per slot.
  std::span<UniqueFd> master_channels() noexcept { return master_channels_; }
  // The master's sockets to accept on (pass), or none.
  std::span<Listener> master_listeners() noexcept;

  // In a forked worker: close what belongs to other slots and the master.
  void keep_only(unsigned slot) noexcept;
  // On a stop: the master's copies go, so the kernel refuses instead of queueing.
  void close_all() noexcept;

 private:
  Model model_;
  Accept accept_;
  unsigned threads_;
  unsigned workers_;
  std::string lock_path_;
  void* accept_lock_ = nullptr;
  std::vector<std::vector<Listener>> sets_;  // one, or one per slot (reuseport)
  std::vector<UniqueFd> master_channels_;
  std::vector<UniqueFd> worker_channels_;
};

}  // namespace prefork
