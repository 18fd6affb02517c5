#include "worker_plan.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <thread>

#include <prefork/core/trace.hpp>
#include <prefork/error.hpp>

#include <prefork/workers/runtime.hpp>

#include "inherited_listeners.hpp"

namespace prefork {

namespace {

// Stevens' pre-forked servers sleep in accept() itself, which needs a
// blocking socket; it works when a process has one TCP listener to watch
// and one thread that accepts (the others, if any, block the stop signals,
// so that a stop interrupts that accept()). Everything else polls.
bool blocking_accept(const ServerConfig& config, Accept accept) {
  bool one_tcp_listener =
      config.listeners.size() == 1 && config.listeners[0].protocol != Protocol::datagram;
  // Every blocking model has one accepting thread per process, except the
  // prethreaded pool whose threads take turns under a lock.
  bool one_accepting_thread = facts(config.model).blocking &&
                              !(config.model == Model::prethreaded && accept == Accept::lock);
  bool accepts_itself = accept == Accept::shared || accept == Accept::lock ||
                        accept == Accept::flock || accept == Accept::reuseport ||
                        accept == Accept::main;
  return one_tcp_listener && one_accepting_thread && accepts_itself;
}

struct PoolSize {
  unsigned workers;      // at start
  unsigned max_workers;  // the most TTIN or the dynamic pool may reach
};

// With reuseport each seat owns its sockets: closing one would drop the
// connections queued on it, so that pool never changes size.
PoolSize pool_size(const ServerConfig& config, Accept accept) {
  if (!facts(config.model).pool) return {1, 1};
  const unsigned workers =
      config.workers == 0 ? std::max(1u, std::thread::hardware_concurrency()) : config.workers;
  if (accept == Accept::reuseport) return {workers, workers};
  return {workers, config.max_workers == 0 ? 2 * workers : std::max(config.max_workers, workers)};
}

// The workers' settings that a reload (HUP) may change.
void take_settings(WorkerParams& params, const ServerConfig& config) {
  params.threads = config.threads == 0 ? default_threads : config.threads;
  params.max_message = config.max_message;
  params.max_connections = config.max_connections;
  params.graceful_timeout = config.graceful_timeout;
  params.idle_timeout = config.idle_timeout;
  params.read_timeout = config.read_timeout;
  params.write_timeout = config.write_timeout;
  params.listener_timeouts.clear();
  const bool own =
      std::any_of(config.listeners.begin(), config.listeners.end(),
                  [](const ListenerSpec& spec) { return spec.timeouts != ListenerTimeouts{}; });
  if (own)
    for (const ListenerSpec& spec : config.listeners)
      params.listener_timeouts.push_back({spec.timeouts.idle.value_or(config.idle_timeout),
                                          spec.timeouts.read.value_or(config.read_timeout),
                                          spec.timeouts.write.value_or(config.write_timeout)});
  params.worker_stats = config.worker_stats;
  params.log = config.log;
  // The master's time 0, which serve() (or a reload) set before.
  params.trace_origin_ns = config.trace ? trace_origin() : std::nullopt;
}

}  // namespace

WorkerPlan::WorkerPlan(const ServerConfig& config, std::optional<Credentials> run_as) {
  std::string why;
  auto accept = resolve_accept(config.model, config.accept, why);
  if (!accept) throw std::invalid_argument(why);
  base_ = WorkerParams{
      .master_pid = ::getpid(),
      .stats_name = config.stats_name,
      .model = config.model,
      .accept = *accept,
      .run_as = std::move(run_as),
  };
  take_settings(base_, config);
  const Accept strategy = *accept;
  const PoolSize pool = pool_size(config, strategy);
  workers_ = pool.workers;
  max_workers_ = pool.max_workers;
  slots_ = max_workers_ + std::max(1u, config.max_recycling);
  configs_[1] = base_;

  ListenOptions options{.backlog = config.backlog,
                        .blocking = blocking_accept(config, strategy),
                        .reuseport = strategy == Accept::reuseport};
  const unsigned sets = strategy == Accept::reuseport ? workers_ : 1;
  if (auto inherited =
          take_inherited_listeners(config.listeners, options, sets, &inherited_others_)) {
    sets_ = std::move(*inherited);
    inherited_ = true;
  } else {
    sets_.push_back(open_listeners(config.listeners, options));
  }
  if (!inherited_ && strategy == Accept::reuseport) {
    // The others bind exactly what the first set got (port 0 resolved).
    std::vector<ListenerSpec> bound;
    for (const Listener& listener : sets_.front())
      bound.push_back({listener.protocol, listener.local});
    for (unsigned seat = 1; seat < workers_; ++seat)
      sets_.push_back(open_listeners(bound, options));
  }
  if (strategy == Accept::pass) {
    for (unsigned slot = 0; slot < slots_; ++slot) {
      int ends[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ends) != 0)
        throw SystemError("socketpair", errno, "channel to worker " + std::to_string(slot));
      master_channels_.emplace_back(ends[0]);
      worker_channels_.emplace_back(ends[1]);
    }
  }
}

UniqueFd WorkerPlan::take_inherited(const std::string& name) {
  for (auto& [other, fd] : inherited_others_)
    if (other == name && fd) return std::move(fd);
  return {};
}

void WorkerPlan::rename_scoreboard(const std::string& name) {
  base_.stats_name = name;
  for (auto& [id, params] : configs_) params.stats_name = name;
}

void WorkerPlan::attach(Scoreboard& scoreboard) {
  // prethreaded locks with a thread mutex; the processes share this one.
  if (accept() == Accept::lock && model() != Model::prethreaded)
    init_accept_lock(scoreboard.header());
}

// From `config` itself, not the plan's start: a reload may change the pool.
SupervisorSettings WorkerPlan::supervisor_settings(const ServerConfig& config) const {
  const PoolSize pool = pool_size(config, accept());
  return SupervisorSettings{
      .workers = pool.workers,
      .max_workers = pool.max_workers,
      .max_recycling = std::max(1u, config.max_recycling),
      .resizable = facts(config.model).pool && accept() != Accept::reuseport,
      .pool = config.pool,
      .min_spare = config.min_spare,
      .max_spare = config.max_spare,
      .spawn_rate = std::max(1u, config.spawn_rate),
      .timeout = config.timeout,
      .start_timeout = config.start_timeout,
      .graceful_timeout = config.graceful_timeout,
      .drain_delay = config.drain_delay,
      .max_requests = config.max_requests,
      .max_requests_jitter = config.max_requests_jitter,
      .max_start_failures = config.max_start_failures,
      .restart_window = config.restart_window,
  };
}

WorkerParams WorkerPlan::params_for(const StartOrder& order) const {
  auto found = configs_.find(order.config);
  WorkerParams params = found != configs_.end() ? found->second : base_;
  params.slot = order.slot;
  params.generation = order.generation;
  params.max_requests = order.max_requests;
  return params;
}

std::string WorkerPlan::reload_error(const ServerConfig& config) const {
  std::string why;
  auto accept = resolve_accept(config.model, config.accept, why);
  if (!accept) return why;
  if (config.model != base_.model || *accept != base_.accept)
    return "the model and the accept strategy change only with a restart or an upgrade (USR2)";
  const auto& listeners = sets_.front();
  bool same = config.listeners.size() == listeners.size();
  for (std::size_t i = 0; same && i < listeners.size(); ++i)
    same = config.listeners[i].protocol == listeners[i].protocol &&
           (config.listeners[i].address.port() == 0 ||
            config.listeners[i].address.to_string() == listeners[i].local.to_string());
  if (!same) return "the listeners change only with a restart or an upgrade (USR2)";
  return {};
}

void WorkerPlan::add_config(std::uint64_t id, const ServerConfig& config) {
  WorkerParams params = base_;
  take_settings(params, config);
  configs_[id] = std::move(params);
}

std::span<Listener> WorkerPlan::listeners_for(unsigned seat) noexcept {
  return sets_.size() == 1 ? sets_.front() : sets_[seat];
}

int WorkerPlan::worker_channel(unsigned slot) const noexcept {
  return worker_channels_.empty() ? -1 : worker_channels_[slot].get();
}

std::span<Listener> WorkerPlan::master_listeners() noexcept {
  if (accept() != Accept::pass || sets_.empty()) return {};
  return sets_.front();
}

void WorkerPlan::keep_only(unsigned slot, unsigned seat) noexcept {
  if (sets_.size() > 1)
    for (unsigned other = 0; other < sets_.size(); ++other)
      if (other != seat) sets_[other].clear();
  master_channels_.clear();
  for (unsigned other = 0; other < worker_channels_.size(); ++other)
    if (other != slot) worker_channels_[other].reset();
}

void WorkerPlan::close_all() noexcept {
  for (auto& set : sets_) set.clear();
}

}  // namespace prefork
