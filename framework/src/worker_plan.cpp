#include "worker_plan.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <thread>

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
      .threads = config.threads == 0 ? default_threads : config.threads,
      .max_message = config.max_message,
      .graceful_timeout = config.graceful_timeout,
      .worker_stats = config.worker_stats,
      .run_as = std::move(run_as),
  };
  workers_ =
      config.workers == 0 ? std::max(1u, std::thread::hardware_concurrency()) : config.workers;
  if (!facts(config.model).pool) workers_ = 1;
  const Accept strategy = *accept;

  ListenOptions options{.backlog = config.backlog,
                        .blocking = blocking_accept(config, strategy),
                        .reuseport = strategy == Accept::reuseport};
  const unsigned sets = strategy == Accept::reuseport ? workers_ : 1;
  if (auto inherited = take_inherited_listeners(config.listeners, options, sets)) {
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
    for (unsigned slot = 1; slot < workers_; ++slot)
      sets_.push_back(open_listeners(bound, options));
  }
  if (strategy == Accept::pass) {
    for (unsigned slot = 0; slot < workers_; ++slot) {
      int ends[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ends) != 0)
        throw SystemError("socketpair", errno, "channel to worker " + std::to_string(slot));
      master_channels_.emplace_back(ends[0]);
      worker_channels_.emplace_back(ends[1]);
    }
  }
}

void WorkerPlan::attach(Scoreboard& scoreboard) {
  // prethreaded locks with a thread mutex; the processes share this one.
  if (accept() == Accept::lock && model() != Model::prethreaded)
    init_accept_lock(scoreboard.header());
}

WorkerParams WorkerPlan::params_for(unsigned slot, std::uint64_t generation) const {
  WorkerParams params = base_;
  params.slot = slot;
  params.generation = generation;
  return params;
}

std::span<Listener> WorkerPlan::listeners_for(unsigned slot) noexcept {
  return sets_.size() == 1 ? sets_.front() : sets_[slot];
}

int WorkerPlan::worker_channel(unsigned slot) const noexcept {
  return worker_channels_.empty() ? -1 : worker_channels_[slot].get();
}

std::span<Listener> WorkerPlan::master_listeners() noexcept {
  if (accept() != Accept::pass || sets_.empty()) return {};
  return sets_.front();
}

void WorkerPlan::keep_only(unsigned slot) noexcept {
  if (sets_.size() > 1)
    for (unsigned other = 0; other < sets_.size(); ++other)
      if (other != slot) sets_[other].clear();
  master_channels_.clear();
  for (unsigned other = 0; other < worker_channels_.size(); ++other)
    if (other != slot) worker_channels_[other].reset();
}

void WorkerPlan::close_all() noexcept {
  for (auto& set : sets_) set.clear();
}

}  // namespace prefork
