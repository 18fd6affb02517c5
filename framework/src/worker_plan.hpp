// What each worker slot is given, by model and accept strategy: which
// listening sockets (the shared ones, or its own SO_REUSEPORT set), the
// channel to the master (pass), the accept lock, and how it serves. Built
// once by serve() and read by both start modes.
#pragma once

#include <prefork/core/credentials.hpp>
#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/worker_params.hpp>
#include <prefork/listener.hpp>
#include <prefork/server.hpp>
#include <prefork/unique_fd.hpp>

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "supervisor.hpp"

namespace prefork {

class WorkerPlan {
 public:
  // Opens the listeners, or takes those inherited by socket activation
  // (LISTEN_FDS: inherited_listeners.hpp); throws SystemError (e.g. bind),
  // std::invalid_argument (a model/strategy pair that does not go together)
  // or std::runtime_error (inherited sockets that do not fit). `run_as`:
  // whom the workers become once set up (--user/--group).
  explicit WorkerPlan(const ServerConfig& config, std::optional<Credentials> run_as = {});

  // After the scoreboard exists: the lock lives in its header.
  void attach(Scoreboard& scoreboard);

  Model model() const noexcept { return base_.model; }
  Accept accept() const noexcept { return base_.accept; }
  // The most connections each worker holds at once (connection_cap()).
  unsigned connection_cap() const noexcept {
    return prefork::connection_cap(base_.model, base_.accept, base_.max_connections, base_.threads);
  }
  // The pool at start, and the most it may grow to (TTIN, the dynamic pool).
  unsigned workers() const noexcept { return workers_; }
  unsigned max_workers() const noexcept { return max_workers_; }
  // Scoreboard slots: the largest pool plus the workers being replaced.
  unsigned slots() const noexcept { return slots_; }
  // What the supervisor may do with this pool (the rest comes from config).
  SupervisorSettings supervisor_settings(const ServerConfig& config) const;
  // What the worker of `order` is told (the hand-off, defined once).
  WorkerParams params_for(const StartOrder& order) const;
  // A reload: why `config` cannot be applied to this plan (what only a
  // restart or an upgrade changes), or empty.
  std::string reload_error(const ServerConfig& config) const;
  // The workers of configuration `id` get these settings.
  void add_config(std::uint64_t id, const ServerConfig& config);

  // One per configured listener, for the `listening` lines.
  std::span<const Listener> announced() const noexcept { return sets_.front(); }
  // The listeners of the worker in `seat` (its own set with reuseport).
  std::span<Listener> listeners_for(unsigned seat) noexcept;
  // Every listening socket the master holds: one set, or one per slot
  // (reuseport); empty after close_all().
  std::span<const std::vector<Listener>> listener_sets() const noexcept { return sets_; }
  // True when the listeners came from LISTEN_FDS instead of bind().
  bool inherited() const noexcept { return inherited_; }
  // A descriptor inherited beside the listeners under a name of its own
  // (an upgrading master's "metrics" and "upgrade"); empty when none.
  UniqueFd take_inherited(const std::string& name);
  // The scoreboard took another name (the binary upgrade): the workers
  // started from now on attach to it.
  void rename_scoreboard(const std::string& name);
  // pass: the worker's end of its channel (-1 otherwise).
  int worker_channel(unsigned slot) const noexcept;
  // pass: the master's ends, one per slot.
  std::span<UniqueFd> master_channels() noexcept { return master_channels_; }
  // The master's sockets to accept on (pass), or none.
  std::span<Listener> master_listeners() noexcept;

  // In a forked worker: close what belongs to other slots and the master.
  void keep_only(unsigned slot, unsigned seat) noexcept;
  // On a stop: the master's copies go, so the kernel refuses instead of queueing.
  void close_all() noexcept;

 private:
  WorkerParams base_;
  std::map<std::uint64_t, WorkerParams> configs_;  // by StartOrder::config
  unsigned workers_;
  unsigned max_workers_;
  unsigned slots_;
  bool inherited_ = false;
  std::vector<std::vector<Listener>> sets_;  // one, or one per slot (reuseport)
  std::vector<UniqueFd> master_channels_;
  std::vector<UniqueFd> worker_channels_;
  std::vector<std::pair<std::string, UniqueFd>> inherited_others_;
};

}  // namespace prefork
