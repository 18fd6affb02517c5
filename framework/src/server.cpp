#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/signal_pipe.hpp>
#include <prefork/core/trace.hpp>
#include <prefork/log.hpp>
#include <prefork/server.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "binary_upgrade.hpp"
#include "config_check.hpp"
#include "descriptor_limit.hpp"
#include "dispatcher.hpp"
#include "master.hpp"
#include "metrics_endpoint.hpp"
#include "pid_file.hpp"
#include "privileges.hpp"
#include "start_worker.hpp"
#include "worker_plan.hpp"

namespace prefork {

namespace {

// The one line per listener that scripts and tests wait for.
void announce(std::span<const Listener> listeners, const Address* metrics) {
  for (const Listener& listener : listeners) {
    const std::string_view protocol = protocol_name(listener.protocol);
    const std::string local = listener.local.to_string();
    std::printf("listening %.*s %s\n", static_cast<int>(protocol.size()), protocol.data(),
                local.c_str());
    trace("listening: %.*s %s", static_cast<int>(protocol.size()), protocol.data(), local.c_str());
  }
  if (metrics) std::printf("listening metrics %s\n", metrics->to_string().c_str());
  std::fflush(stdout);
}

}  // namespace

std::string config_error(const ServerConfig& config, const Handler* handler) {
  if (config.listeners.empty()) return "nothing to serve: give --tcp, --framed or --udp";
  if (!config.worker_exe.empty() && config.start != StartMode::spawn)
    return "--worker-exe needs --start spawn";
  // It would give up at the first exit of any worker, even a clean recycle.
  if (config.max_start_failures == 0) return "max_start_failures must be at least 1";
  if (config.pool == PoolMode::dynamic && config.max_spare < config.min_spare)
    return "--max-spare must be at least --min-spare";
  std::string why;
  if (!resolve_accept(config.model, config.accept, why)) return why;
  if (dynamic_cast<const ConnectionHandler*>(handler) != nullptr && !facts(config.model).blocking) {
    why = "a ConnectionHandler (handle(Connection&)) needs a blocking model, not --model ";
    why.append(model_name(config.model)).append(":");
    for (const ModelFacts& model : all_model_facts())
      if (model.blocking) why.append(" ").append(model.name);
    return why;
  }
  return {};
}

int serve(const ServerConfig& requested, Handler& handler) {
  set_log_role("master");
  if (std::string error = config_error(requested, &handler); !error.empty()) {
    log_error("invalid configuration: %s", error.c_str());
    return exit_usage;
  }
  try {
    configure_log(requested.log);
  } catch (const std::exception& e) {
    log_error("%s", e.what());  // on stderr: where the log was before
    return exit_setup_failed;
  }
  ServerConfig config = requested;
  std::optional<UpgradeArrival> arrival;  // started by an old master's SIGUSR2
  try {
    arrival = UpgradeArrival::from_environment();
  } catch (const std::exception& e) {
    log_error("%s", e.what());
    return exit_setup_failed;
  }
  if (arrival) config.stats_name = arrival->stats_name();
  if (config.stats_name.empty()) config.stats_name = "prefork_" + std::to_string(::getpid());
  // Before anything could change them: what SIGUSR2 executes again.
  std::optional<ProgramImage> program = ProgramImage::of_this_process();
  WorkerIdentity identity = worker_identity(config, ::geteuid());
  if (!identity.error.empty()) {
    log_error("invalid configuration: %s", identity.error.c_str());
    return exit_usage;
  }
  // Time 0 of the trace: the master's start.
  set_trace_origin(monotonic_ns());
  enable_trace(config.trace);
  trace("start: master pid %d", static_cast<int>(::getpid()));

  try {
    // Handlers first: a signal from now on is an orderly stop.
    SignalPipe signals(master_signals());
    ::signal(SIGPIPE, SIG_IGN);
    const rlim_t descriptors = raise_descriptor_limit();
    WorkerPlan plan(config, identity.run_as);  // the listeners, opened (or inherited) here
    // Every listening socket the master holds: a forked worker may too.
    const std::size_t listening = plan.listener_sets().size() * plan.announced().size();
    if (const std::string short_by =
            descriptor_shortfall(descriptors, plan.connection_cap(), listening, plan.workers());
        !short_by.empty())
      log_warning("%s", short_by.c_str());
    if (plan.inherited())
      log_info("serving on %zu inherited sockets (LISTEN_FDS) instead of binding",
               plan.listener_sets().size() * plan.announced().size());
    // A new master's segment takes the old one's name only once it serves.
    const std::string segment = arrival ? arrival->interim_stats_name() : config.stats_name;
    if (arrival) {
      arrival->take_pipe(plan);
      plan.rename_scoreboard(segment);
    }
    Scoreboard scoreboard = Scoreboard::create(segment, plan.slots(), plan.announced());
    plan.attach(scoreboard);
    std::optional<PidFile> pid_file;
    if (!config.pid_file.empty()) pid_file.emplace(config.pid_file);

    std::optional<MetricsEndpoint> metrics;
    if (config.metrics) {
      if (UniqueFd inherited = plan.take_inherited(metrics_socket_name))
        metrics.emplace(std::move(inherited), segment);
      else
        metrics.emplace(*config.metrics, segment);
    }
    std::optional<Dispatcher> dispatcher;
    if (plan.accept() == Accept::pass) dispatcher.emplace(plan);
    ProcessUpgradeHost upgrade_host(
        ProcessUpgradeHost::Setup{.program = std::move(program),
                                  .stats_name = config.stats_name,
                                  .pid_file = config.pid_file,
                                  .metrics_fd = metrics ? metrics->listener_fd() : -1,
                                  .old_master = arrival ? arrival->old_master() : 0},
        plan, signals);
    BinaryUpgrade upgrade(upgrade_host, config.start_timeout);
    std::vector<MasterService*> services;
    if (dispatcher) services.push_back(&*dispatcher);
    if (metrics) services.push_back(&*metrics);
    services.push_back(&upgrade);

    std::unique_ptr<WorkerStarter> starter;
    if (config.start == StartMode::fork)
      starter = make_fork_starter(plan, scoreboard, handler, signals, [&services, &arrival] {
        for (MasterService* service : services) service->close_in_child();
        if (arrival) arrival->close_in_child();
      });
    else
      starter = make_spawn_starter(config, plan, signals);

    announce(plan.announced(), metrics ? &metrics->local() : nullptr);
    std::function<void()> on_ready;
    if (arrival)
      on_ready = [&] { arrival->complete(scoreboard, plan, metrics ? &*metrics : nullptr); };
    Master master(config, plan, scoreboard, *starter, signals, services, &upgrade,
                  std::move(on_ready));
    return master.run();
  } catch (const std::exception& e) {
    log_error("%s", e.what());
    return exit_setup_failed;
  }
}

}  // namespace prefork
