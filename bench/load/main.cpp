// prefork-bench: a load generator for prefork servers (and any server that
// speaks framed TCP, raw TCP or UDP on loopback). See README.md here.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <exception>

#include "exchange.hpp"
#include "machine.hpp"
#include "options.hpp"
#include "report.hpp"
#include "run.hpp"

namespace {

std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);  // safe to store in a handler

void on_signal(int) { interrupted.store(true, std::memory_order_relaxed); }

// The first Ctrl-C ends the run early with a summary; the handler is then
// reset, so a second one kills at once.
void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this is a second guard
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options options;
  if (int status = bench::parse_options(argc, argv, options); status >= 0) return status;
  install_signal_handlers();
  try {
    const bench::Exchange exchange = bench::make_exchange(options);
    const bench::RunResult result = bench::run_load(options, exchange, interrupted);
    const bench::Machine machine = bench::describe_machine();
    if (options.json)
      std::fputs(bench::to_json(options, exchange, result, machine).c_str(), stdout);
    else
      bench::print_summary(stdout, options, exchange, result, machine);
    if (result.broken)
      std::fprintf(stderr, "prefork-bench: a load thread stopped: %s\n",
                   bench::describe(result.fatal).c_str());
    return result.broken || result.errors.total() != 0 || result.starved_connections != 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefork-bench: %s\n", e.what());
    return 1;
  }
}
