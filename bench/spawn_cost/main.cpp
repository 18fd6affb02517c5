// spawn-cost: what creating a process costs, and how fast the prefork master
// replaces a dead worker. See bench/spawn, which runs it and writes
// bench/results/spawn.md.
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prefork/flag_parser.hpp>

#include "common.hpp"
#include "modes.hpp"

namespace {

using namespace spawn_cost;
using prefork::flags::UsageError;

namespace po = boost::program_options;

po::options_description cost_flags() {
  return prefork::flags::section(
      "Options",
      {{"methods", "LIST",
        "comma-separated, from: fork fork+exec vfork+exec posix_spawn boost_process_v2 "
        "pthread_create (default: all)"},
       {"sizes", "MIB,...", "region sizes in MiB (default 1,16,64,256,1024)"},
       {"iterations", "N", "rounds per size (default 200)"},
       {"warmup", "N", "uncounted rounds first (default 3)"},
       {"budget", "SECONDS", "per size: stop early after this long (default 60)"},
       {"exec", "TARGET",
        "what the exec methods run: helper (spawn-cost-child, static, default), self (this "
        "binary --child-exit), or a program PATH (run without arguments; no start timing)"},
       {"thp", "", "let the region use transparent huge pages (default: refused)"},
       {"quick", "", "a smoke set: sizes 1,64, 10 rounds, 1 warm-up"},
       {"json", "", "JSON on stdout; the table goes to stderr"},
       {"help,h", "", "this text"}});
}

po::options_description replace_flags() {
  return prefork::flags::section(
      "replace options",
      {{"server", "PATH", "the server program (required)"},
       {"mode", "MODE", "its --start mode: fork (default) or spawn"},
       {"iterations", "N", "replacements (default 200; --quick 20)"},
       {"settle-ms", "MS",
        "wait after a worker is ready before killing it (default 1020: the master backs off "
        "when a worker dies within 1 s of starting)"},
       {"timeout-ms", "MS", "per replacement (default 5000)"},
       {"quick", "", "20 replacements"},
       {"json", "", "JSON on stdout; the table goes to stderr"},
       {"help,h", "", "this text"}});
}

void print_usage() {
  std::printf(
      "usage: spawn-cost [OPTION]...\n"
      "       spawn-cost replace --server PATH [OPTION]...\n"
      "       spawn-cost --child-exit [FD]\n"
      "\n"
      "Creation cost: for each parent size (an mmap'd region, every page written), runs the\n"
      "methods in turn, round after round, and times each child from the call until it is\n"
      "reaped, and until it runs (its first act sends a CLOCK_MONOTONIC stamp).\n"
      "%s\n"
      "replace: starts SERVER (build/bin/upper_server) with one worker, then SIGKILLs the\n"
      "worker again and again and times its replacement (ready on the scoreboard; first\n"
      "reply to a frame sent right after the kill).\n"
      "%s",
      prefork::flags::help_text(cost_flags()).c_str(),
      prefork::flags::help_text(replace_flags()).c_str());
}

// The flags of words [first, argc) in order, as (name, value); a word that
// is not a flag is an error. Nothing after --help.
std::vector<std::pair<std::string, std::string>> flags_of(int argc, char** argv, int first,
                                                          const po::options_description& flags) {
  const po::parsed_options parsed =
      prefork::flags::parse(std::vector<std::string>(argv + first, argv + argc), flags);
  std::vector<std::pair<std::string, std::string>> result;
  for (const po::option& option : parsed.options) {
    if (option.string_key.empty())
      throw UsageError("unexpected argument '" + option.value.at(0) + "'");
    if (option.string_key == "help") return {{"help", ""}};
    result.emplace_back(option.string_key, option.value.empty() ? "" : option.value[0]);
  }
  return result;
}

int cost_main(int argc, char** argv) {
  CostOptions options;
  bool quick = false, iterations_given = false, sizes_given = false, warmup_given = false;
  for (const auto& [name, value] : flags_of(argc, argv, 1, cost_flags())) {
    const std::string flag = "--" + name;
    if (name == "help") {
      print_usage();
      return 0;
    } else if (name == "methods") {
      options.methods.clear();
      for (std::string_view method_name : split_commas(value)) {
        auto method = parse_method(method_name);
        if (!method)
          throw UsageError("--methods: unknown method '" + std::string(method_name) + "'");
        options.methods.push_back(*method);
      }
      if (options.methods.empty()) throw UsageError("--methods needs at least one method");
    } else if (name == "sizes") {
      options.sizes_mib.clear();
      for (std::string_view size : split_commas(value))
        options.sizes_mib.push_back(prefork::flags::number(flag, size, 1u, 65536u));
      if (options.sizes_mib.empty()) throw UsageError("--sizes needs at least one size");
      sizes_given = true;
    } else if (name == "iterations") {
      options.iterations = prefork::flags::number(flag, value, 1u, 100000u);
      iterations_given = true;
    } else if (name == "warmup") {
      options.warmup = prefork::flags::number(flag, value, 0u, 1000u);
      warmup_given = true;
    } else if (name == "budget") {
      options.budget_s = prefork::flags::number(flag, value, 1u, 3600u);
    } else if (name == "exec") {
      options.exec = value;
      if (options.exec.empty()) throw UsageError("--exec needs helper, self or a path");
    } else if (name == "thp") {
      options.huge_pages = true;
    } else if (name == "quick") {
      quick = true;
    } else if (name == "json") {
      options.json = true;
    }
  }
  if (quick) {
    if (!sizes_given) options.sizes_mib = {1, 64};
    if (!iterations_given) options.iterations = 10;
    if (!warmup_given) options.warmup = 1;
  }
  return run_cost(options);
}

int replace_main(int argc, char** argv) {
  ReplaceOptions options;
  bool quick = false, iterations_given = false;
  for (const auto& [name, value] : flags_of(argc, argv, 2, replace_flags())) {
    const std::string flag = "--" + name;
    if (name == "help") {
      print_usage();
      return 0;
    } else if (name == "server") {
      options.server = value;
    } else if (name == "mode") {
      options.mode = value;
      if (options.mode != "fork" && options.mode != "spawn")
        throw UsageError("--mode wants fork or spawn, not '" + options.mode + "'");
    } else if (name == "iterations") {
      options.iterations = prefork::flags::number(flag, value, 1u, 100000u);
      iterations_given = true;
    } else if (name == "settle-ms") {
      options.settle_ms = prefork::flags::number(flag, value, 0u, 60000u);
    } else if (name == "timeout-ms") {
      options.timeout_ms = prefork::flags::number(flag, value, 1u, 60000u);
    } else if (name == "quick") {
      quick = true;
    } else if (name == "json") {
      options.json = true;
    }
  }
  if (options.server.empty()) throw UsageError("replace needs --server PATH");
  if (quick && !iterations_given) options.iterations = 20;
  return run_replace(options);
}

// The exec target "self": leaves before anything else runs in main(). With a
// descriptor number, it first sends its start stamp there.
int child_exit(int argc, char** argv) {
  if (argc < 3) return 0;
  std::int64_t stamp = now_ns();
  int fd = std::atoi(argv[argc - 1]);
  return ::write(fd, &stamp, sizeof stamp) == sizeof stamp ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--child-exit") return child_exit(argc, argv);
  try {
    install_stop_handlers();
    if (argc >= 2 && std::string_view(argv[1]) == "replace") return replace_main(argc, argv);
    return cost_main(argc, argv);
  } catch (const UsageError& e) {
    return prefork::flags::usage_error("spawn-cost", e.what());
  } catch (const Interrupted& e) {
    std::fprintf(stderr, "spawn-cost: %s\n", e.what());
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spawn-cost: %s\n", e.what());
    return 1;
  }
}
