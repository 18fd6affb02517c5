// Creation cost: for each parent size, every method in turn (A B C ... A B C
// ...), so drift on a shared machine spreads evenly over the methods.
#include <cstdio>
#include <string>

#include "common.hpp"
#include "modes.hpp"

namespace spawn_cost {

namespace {

struct Point {
  Method method;
  unsigned region_mib;
  double rss_mib;
  Summary reap, start;
  bool has_start;
};

void print_table(std::FILE* out, const ExecTarget& target, const std::vector<Point>& points) {
  std::fprintf(out,
               "spawn-cost: microseconds from the call until the child is reaped, and until it "
               "runs\n(exec target: %s, %s)\n\n",
               target.path.c_str(), target.kind.c_str());
  const char* columns = "   median       p90       p99       min       max";
  std::fprintf(out, "%-17s %6s %8s %5s | %-49s | %s\n", "", "", "", "", "until reaped",
               "until running");
  std::fprintf(out, "%-17s %6s %8s %5s | %s | %s\n", "method", "MiB", "RSS MiB", "n", columns,
               columns);
  for (const Point& p : points) {
    std::string start =
        p.has_start ? summary_columns(p.start) : "  (not timed: the target sends no stamp)";
    std::fprintf(out, "%-17s %6u %8.1f %5zu | %s | %s\n",
                 std::string(method_name(p.method)).c_str(), p.region_mib, p.rss_mib, p.reap.n,
                 summary_columns(p.reap).c_str(), start.c_str());
  }
}

void print_json(std::FILE* out, const CostOptions& options, const ExecTarget& target,
                const std::vector<Point>& points) {
  std::fprintf(out,
               "{\n  \"tool\": \"spawn-cost\",\n  \"measurement\": \"creation\",\n"
               "  \"unit\": \"us\",\n  \"iterations\": %u,\n  \"warmup\": %u,\n"
               "  \"budget_s\": %u,\n  \"huge_pages\": %s,\n",
               options.iterations, options.warmup, options.budget_s,
               options.huge_pages ? "true" : "false");
  std::fprintf(out, "  \"exec_target\": {\"path\": %s, \"kind\": %s, \"stamps\": %s},\n",
               json_string(target.path).c_str(), json_string(target.kind).c_str(),
               target.stamps ? "true" : "false");
  std::fprintf(out, "  \"results\": [\n");
  for (std::size_t i = 0; i < points.size(); ++i) {
    const Point& p = points[i];
    std::fprintf(out,
                 "    {\"method\": %s, \"region_mib\": %u, \"rss_mib\": %.1f,\n"
                 "     \"reap_us\": %s,\n     \"start_us\": %s}%s\n",
                 json_string(method_name(p.method)).c_str(), p.region_mib, p.rss_mib,
                 summary_json(p.reap).c_str(), p.has_start ? summary_json(p.start).c_str() : "null",
                 i + 1 < points.size() ? "," : "");
  }
  std::fprintf(out, "  ]\n}\n");
}

}  // namespace

int run_cost(const CostOptions& options) {
  ChildRunner runner(exec_target(options.exec));
  std::vector<Point> points;

  for (unsigned mib : options.sizes_mib) {
    TouchedRegion region(static_cast<std::size_t>(mib) << 20, options.huge_pages);
    const double rss_mib = static_cast<double>(resident_bytes()) / (1 << 20);

    const std::size_t count = options.methods.size();
    std::vector<std::vector<std::int64_t>> reaped(count), running(count);
    for (unsigned round = 0; round < options.warmup; ++round)
      for (Method method : options.methods) {
        check_stop();
        runner.time_reap(method);
        if (runner.can_time_start(method)) runner.time_start(method);
      }

    const std::int64_t begin = now_ns();
    const std::int64_t deadline = begin + std::int64_t{options.budget_s} * 1'000'000'000;
    unsigned rounds = 0;
    while (rounds < options.iterations) {
      for (std::size_t m = 0; m < count; ++m) {
        check_stop();
        reaped[m].push_back(runner.time_reap(options.methods[m]));
        if (runner.can_time_start(options.methods[m]))
          running[m].push_back(runner.time_start(options.methods[m]));
      }
      ++rounds;
      if (now_ns() > deadline) break;
    }
    std::fprintf(stderr, "spawn-cost: %u MiB region (RSS %.1f MiB): %u rounds in %.1f s%s\n", mib,
                 rss_mib, rounds, static_cast<double>(now_ns() - begin) / 1e9,
                 rounds < options.iterations ? " (time budget reached)" : "");
    for (std::size_t m = 0; m < count; ++m)
      points.push_back({options.methods[m], mib, rss_mib, summarize(reaped[m]),
                        summarize(running[m]), runner.can_time_start(options.methods[m])});
  }

  if (options.json) {
    print_json(stdout, options, runner.target(), points);
    print_table(stderr, runner.target(), points);
  } else {
    print_table(stdout, runner.target(), points);
  }
  return 0;
}

}  // namespace spawn_cost
