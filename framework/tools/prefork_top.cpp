// prefork-top: a running server's scoreboard, live like top(1) on a
// terminal, as timestamped blocks of plain lines when piped, or as JSON
// lines or the metrics exposition for other programs. It only reads the
// segment; it never changes it.
#include "top_terminal.hpp"
#include "top_view.hpp"

#include <prefork/exposition.hpp>
#include <prefork/scoreboard.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace {

using prefork_top::Sample;

constexpr const char* usage =
    "usage: prefork-top [--once] [--interval SECONDS] [--json | --prometheus[=FORMAT]] NAME\n"
    "Shows the scoreboard of the server started with --stats NAME: redrawn in place\n"
    "on a terminal (q or Ctrl-C quits), one timestamped block per refresh otherwise.\n"
    "  --interval S      seconds between refreshes, decimals allowed (default 1)\n"
    "  --once            print one refresh and exit (rates need two: shown as -)\n"
    "  --json            one JSON document per refresh, one per line\n"
    "  --prometheus[=F]  the metrics exposition per refresh; F is openmetrics\n"
    "                    (the default) or text (Prometheus text format 0.0.4)\n"
    "  --help            this text\n"
    "Columns: REQ/S and P99 cover the last interval; ACCEPTED counts connections\n"
    "and SHARE% is the slot's part of those accepted by live workers; HB-AGE is\n"
    "the time since the worker's heartbeat (over 3 s: ! late, or _ idle in accept);\n"
    "STATE* marks a slot "
    "whose writer stopped mid-update. TOTAL includes workers that have exited.\n"
    "A segment found scribbled over is shown bounded and marked CORRUPT; one whose\n"
    "master is gone is marked so. With --once, either makes the exit status 1.\n";

enum class Output { table, json, openmetrics, prometheus_text };

struct Options {
  Output output = Output::table;
  bool once = false;
  double interval = 1.0;
  std::string name;
};

// Returns -1 to go on, or the exit code.
int parse(int argc, char** argv, Options& options) {
  auto bad = [](const char* what, const char* arg) {
    std::fprintf(stderr, "prefork-top: %s: %s\n%s", what, arg, usage);
    return 2;
  };
  bool names_only = false, machine_output = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    if (names_only || arg.empty() || arg[0] != '-') {
      if (!options.name.empty()) return bad("more than one NAME", argv[i]);
      options.name = arg;
    } else if (arg == "--") {
      names_only = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    } else if (arg == "--json" || arg == "--prometheus" || arg.starts_with("--prometheus=")) {
      if (machine_output) return bad("choose one of --json and --prometheus", argv[i]);
      machine_output = true;
      if (arg == "--json") {
        options.output = Output::json;
      } else if (arg == "--prometheus" || arg == "--prometheus=openmetrics") {
        options.output = Output::openmetrics;
      } else if (arg == "--prometheus=text") {
        options.output = Output::prometheus_text;
      } else {
        return bad("--prometheus takes openmetrics or text", argv[i]);
      }
    } else if (arg == "--once") {
      options.once = true;
    } else if (arg == "--interval" || arg.starts_with("--interval=")) {
      if (arg == "--interval") {
        if (++i == argc) return bad("missing value for", "--interval");
        value = argv[i];
      } else {
        value = arg.substr(std::strlen("--interval="));
      }
      char* end = nullptr;
      options.interval = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(options.interval > 0 && options.interval <= 86400))
        return bad("--interval wants seconds in (0, 86400]", value.c_str());
    } else {
      return bad("unknown option", argv[i]);
    }
  }
  if (options.name.empty()) {
    std::fputs(usage, stderr);
    return 2;
  }
  return -1;
}

// How often, between refreshes, prefork-top looks whether the server is
// still there, so that a long --interval does not delay "server stopped".
constexpr std::uint64_t liveness_check_ns = 250'000'000;

class Top {
 public:
  Top(const Options& options, prefork::ScoreboardReader reader)
      : options_(options),
        reader_(std::move(reader)),
        live_view_(options.output == Output::table && !options.once &&
                   ::isatty(STDOUT_FILENO) == 1),
        signals_(live_view_),
        interval_ns_(std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(std::llround(options.interval * 1e9)))) {
    if (live_view_)
      terminal_.emplace(::isatty(STDIN_FILENO) == 1 ? STDIN_FILENO : -1, STDOUT_FILENO);
  }

  int run() {
    std::uint64_t next = prefork::monotonic_ns();
    while (!signals_.stop_requested()) {
      if (!options_.once && server_gone()) return stopped();
      if (!refresh()) return write_failed();
      if (options_.once) return once_status();
      // Late (a slow terminal, a suspension): start a fresh interval rather
      // than refresh in a burst.
      const std::uint64_t now = prefork::monotonic_ns();
      next = next + interval_ns_ > now ? next + interval_ns_ : now + interval_ns_;
      switch (wait_until(next)) {
        case Woken::due:
          break;
        case Woken::quit:
          return 0;
        case Woken::server_gone:
          return stopped();
        case Woken::write_failed:
          return write_failed();
      }
    }
    return 0;
  }

 private:
  bool server_gone() {
    if (reader_->unlinked()) {
      if (follow_new_segment()) return false;
      message_ = "server stopped";
    } else if (master_ != 0 && !prefork::process_running(master_)) {
      // Killed without a chance to remove its segment.
      message_ = "server stopped (master " + std::to_string(master_) + " exited)";
    }
    return !message_.empty();
  }

  // A binary upgrade's new master took the name over (renamed its segment
  // onto it): follow it, as `tail -F` follows a rotated file.
  bool follow_new_segment() {
    try {
      prefork::ScoreboardReader next = prefork::ScoreboardReader::open(options_.name);
      const pid_t master = next.snapshot(prefork::ScoreboardReader::Latencies::skipped).master_pid;
      if (!prefork::process_running(master)) return false;
      reader_.reset();
      reader_.emplace(std::move(next));
      before_.reset();  // rates across two segments would mean nothing
      master_ = master;
      return true;
    } catch (const std::exception&) {
      return false;  // gone, or not a scoreboard: the server stopped
    }
  }

  // Where the last line goes: after the live view's last frame, or on
  // stderr when stdout is a stream of documents for another program.
  int stopped() {
    terminal_.reset();
    if (options_.output == Output::table)
      prefork_top::write_all(STDOUT_FILENO, message_ + "\n");
    else
      std::fprintf(stderr, "prefork-top: %s\n", message_.c_str());
    return 0;
  }

  // After the one refresh of --once: what a script must not take for a
  // healthy, live server.
  int once_status() {
    bool fine = corrupt_.empty();
    if (!corrupt_.empty() && options_.output != Output::table)
      std::fprintf(stderr, "prefork-top: %s\n", corrupt_.c_str());
    if (!prefork::process_running(master_)) {
      fine = false;
      if (options_.output != Output::table)
        std::fprintf(stderr, "prefork-top: %s\n", master_gone().c_str());
    }
    return fine ? 0 : 1;
  }

  std::string master_gone() const {
    return "master " + std::to_string(master_) +
           " is gone: this segment is what it left, not a live server";
  }

  int write_failed() {
    const int error = errno;
    terminal_.reset();
    std::fprintf(stderr, "prefork-top: writing to stdout: %s\n", std::strerror(error));
    return 1;
  }

  bool refresh() {
    Sample now{reader_->snapshot(), prefork::monotonic_ns()};
    master_ = now.snap.master_pid;
    corrupt_ = now.snap.corrupt;
    std::string text;
    switch (options_.output) {
      case Output::json:
        text = prefork::render_json(now.snap, options_.name) + "\n";
        break;
      case Output::openmetrics:
        text = prefork::render_metrics(now.snap, prefork::MetricsFormat::openmetrics);
        break;
      case Output::prometheus_text:
        text = prefork::render_metrics(now.snap, prefork::MetricsFormat::prometheus_text);
        break;
      case Output::table:
        shown_ = prefork_top::render_table(options_.name, now, before_ ? &*before_ : nullptr);
        if (!corrupt_.empty()) shown_.push_back("CORRUPT: " + corrupt_);
        if (options_.once && !prefork::process_running(master_))
          shown_.push_back("MASTER GONE: " + master_gone());
        if (terminal_) {
          before_ = std::move(now);
          return redraw();
        }
        // Appended char by char: GCC 12 warns wrongly (-Wrestrict, PR 105329)
        // on assigning a literal to a std::string at -O2.
        if (before_) text.push_back('\n');  // a blank line between blocks
        for (const std::string& line : shown_) {
          text += line;
          text.push_back('\n');
        }
        break;
    }
    before_ = std::move(now);
    return prefork_top::write_all(STDOUT_FILENO, text);
  }

  bool redraw() {
    return terminal_->draw(prefork_top::fit(shown_, terminal_->columns(), terminal_->rows()));
  }

  enum class Woken { due, quit, server_gone, write_failed };

  // Sleeps until `deadline`, answering keys and signals meanwhile.
  Woken wait_until(std::uint64_t deadline) {
    for (;;) {
      const std::uint64_t now = prefork::monotonic_ns();
      if (now >= deadline) return Woken::due;
      const int keys = terminal_ ? terminal_->key_fd() : -1;
      const bool key = signals_.wait(std::min(deadline - now, liveness_check_ns), keys);
      if (signals_.stop_requested()) return Woken::quit;
      if (key && terminal_->quit_key()) return Woken::quit;
      if (signals_.take_suspend() && terminal_) {
        terminal_->restore();
        ::raise(SIGSTOP);  // returns once continued (fg)
        terminal_->take();
        terminal_->measure();
        if (!redraw()) return Woken::write_failed;
      }
      if (signals_.take_resize() && terminal_) {
        terminal_->measure();
        if (!redraw()) return Woken::write_failed;
      }
      if (server_gone()) return Woken::server_gone;
    }
  }

  const Options& options_;
  std::optional<prefork::ScoreboardReader> reader_;  // replaced when an upgrade takes the name
  const bool live_view_;
  prefork_top::Signals signals_;
  const std::uint64_t interval_ns_;
  std::optional<prefork_top::Terminal> terminal_;
  std::optional<Sample> before_;
  std::vector<std::string> shown_;  // the table before fitting, for redraws
  pid_t master_ = 0;
  std::string message_;  // why the server is gone
  std::string corrupt_;  // the last refresh's ScoreboardSnapshot::corrupt
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (int code = parse(argc, argv, options); code >= 0) return code;
  try {
    prefork::ScoreboardReader reader = prefork::ScoreboardReader::open(options.name);
    return Top(options, std::move(reader)).run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefork-top: %s\n", e.what());
    return 1;
  }
}
