// spawn-cost: what creating a process costs, and how fast the prefork master
// replaces a dead worker. See bench/spawn, which runs it and writes
// bench/results/spawn.md.
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common.hpp"
#include "modes.hpp"

namespace {

using namespace spawn_cost;

constexpr const char* usage_text =
    "usage: spawn-cost [--methods LIST] [--sizes MIB,...] [--iterations N] [--warmup N]\n"
    "                  [--budget SECONDS] [--exec helper|self|PATH] [--thp] [--quick] [--json]\n"
    "       spawn-cost replace --server PATH [--mode fork|spawn] [--iterations N]\n"
    "                  [--settle-ms MS] [--timeout-ms MS] [--quick] [--json]\n"
    "       spawn-cost --child-exit [FD]\n"
    "\n"
    "Creation cost: for each parent size (an mmap'd region, every page written), runs the\n"
    "methods in turn, round after round, and times each child from the call until it is\n"
    "reaped, and until it runs (its first act sends a CLOCK_MONOTONIC stamp).\n"
    "  --methods LIST    comma-separated, from: fork fork+exec vfork+exec posix_spawn\n"
    "                    boost_process_v2 pthread_create (default: all)\n"
    "  --sizes LIST      region sizes in MiB (default 1,16,64,256,1024)\n"
    "  --iterations N    rounds per size (default 200)\n"
    "  --warmup N        uncounted rounds first (default 3)\n"
    "  --budget SECONDS  per size: stop early after this long (default 60)\n"
    "  --exec TARGET     what the exec methods run: helper (spawn-cost-child, static,\n"
    "                    default), self (this binary --child-exit), or a program PATH\n"
    "                    (run without arguments; no start timing)\n"
    "  --thp             let the region use transparent huge pages (default: refused)\n"
    "  --quick           a smoke set: sizes 1,64, 10 rounds, 1 warm-up\n"
    "  --json            JSON on stdout; the table goes to stderr\n"
    "\n"
    "replace: starts SERVER (build/bin/upper_server) with one worker, then SIGKILLs the\n"
    "worker again and again and times its replacement (ready on the scoreboard; first\n"
    "reply to a frame sent right after the kill).\n"
    "  --server PATH     the server program (required)\n"
    "  --mode MODE       its --start mode: fork (default) or spawn\n"
    "  --iterations N    replacements (default 200; --quick 20)\n"
    "  --settle-ms MS    wait after a worker is ready before killing it (default 1020:\n"
    "                    the master backs off when a worker dies within 1 s of starting)\n"
    "  --timeout-ms MS   per replacement (default 5000)\n";

// "--flag VALUE" or "--flag=VALUE".
class Arguments {
 public:
  Arguments(int argc, char** argv, int first) : argc_(argc), argv_(argv), next_(first) {}
  bool more() const { return next_ < argc_; }
  std::string_view flag() {
    std::string_view arg = argv_[next_++];
    value_.reset();
    if (auto equals = arg.find('='); arg.rfind("--", 0) == 0 && equals != std::string_view::npos) {
      value_ = arg.substr(equals + 1);
      arg = arg.substr(0, equals);
    }
    return arg;
  }
  std::string_view value(std::string_view flag) {
    if (value_) return *std::exchange(value_, std::nullopt);
    if (next_ >= argc_) throw UsageError(std::string(flag) + " needs a value");
    return argv_[next_++];
  }
  void no_value(std::string_view flag) const {
    if (value_) throw UsageError(std::string(flag) + " takes no value");
  }

 private:
  int argc_;
  char** argv_;
  int next_;
  std::optional<std::string_view> value_;
};

int cost_main(int argc, char** argv) {
  CostOptions options;
  bool quick = false, iterations_given = false, sizes_given = false, warmup_given = false;
  Arguments args(argc, argv, 1);
  while (args.more()) {
    std::string_view flag = args.flag();
    if (flag == "--help" || flag == "-h") {
      std::fputs(usage_text, stdout);
      return 0;
    } else if (flag == "--methods") {
      options.methods.clear();
      for (std::string_view name : split_commas(args.value(flag))) {
        auto method = parse_method(name);
        if (!method) throw UsageError("--methods: unknown method '" + std::string(name) + "'");
        options.methods.push_back(*method);
      }
      if (options.methods.empty()) throw UsageError("--methods needs at least one method");
    } else if (flag == "--sizes") {
      options.sizes_mib.clear();
      for (std::string_view size : split_commas(args.value(flag)))
        options.sizes_mib.push_back(static_cast<unsigned>(parse_number(flag, size, 1, 65536)));
      if (options.sizes_mib.empty()) throw UsageError("--sizes needs at least one size");
      sizes_given = true;
    } else if (flag == "--iterations") {
      options.iterations = static_cast<unsigned>(parse_number(flag, args.value(flag), 1, 100000));
      iterations_given = true;
    } else if (flag == "--warmup") {
      options.warmup = static_cast<unsigned>(parse_number(flag, args.value(flag), 0, 1000));
      warmup_given = true;
    } else if (flag == "--budget") {
      options.budget_s = static_cast<unsigned>(parse_number(flag, args.value(flag), 1, 3600));
    } else if (flag == "--exec") {
      options.exec = args.value(flag);
      if (options.exec.empty()) throw UsageError("--exec needs helper, self or a path");
    } else if (flag == "--thp") {
      args.no_value(flag);
      options.huge_pages = true;
    } else if (flag == "--quick") {
      args.no_value(flag);
      quick = true;
    } else if (flag == "--json") {
      args.no_value(flag);
      options.json = true;
    } else {
      throw UsageError("unknown argument '" + std::string(flag) + "'");
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
  Arguments args(argc, argv, 2);
  while (args.more()) {
    std::string_view flag = args.flag();
    if (flag == "--help" || flag == "-h") {
      std::fputs(usage_text, stdout);
      return 0;
    } else if (flag == "--server") {
      options.server = args.value(flag);
    } else if (flag == "--mode") {
      options.mode = args.value(flag);
      if (options.mode != "fork" && options.mode != "spawn")
        throw UsageError("--mode wants fork or spawn, not '" + options.mode + "'");
    } else if (flag == "--iterations") {
      options.iterations = static_cast<unsigned>(parse_number(flag, args.value(flag), 1, 100000));
      iterations_given = true;
    } else if (flag == "--settle-ms") {
      options.settle_ms = static_cast<unsigned>(parse_number(flag, args.value(flag), 0, 60000));
    } else if (flag == "--timeout-ms") {
      options.timeout_ms = static_cast<unsigned>(parse_number(flag, args.value(flag), 1, 60000));
    } else if (flag == "--quick") {
      args.no_value(flag);
      quick = true;
    } else if (flag == "--json") {
      args.no_value(flag);
      options.json = true;
    } else {
      throw UsageError("unknown argument '" + std::string(flag) + "'");
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
    std::fprintf(stderr, "spawn-cost: %s\n%s", e.what(), usage_text);
    return 2;
  } catch (const Interrupted& e) {
    std::fprintf(stderr, "spawn-cost: %s\n", e.what());
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spawn-cost: %s\n", e.what());
    return 1;
  }
}
