// spawn-cost's two measurements, as main() hands them their options.
#pragma once

#include <string>
#include <vector>

#include "methods.hpp"

namespace spawn_cost {

// Creation cost per method and per parent size (cost.cpp).
struct CostOptions {
  std::vector<Method> methods{all_methods.begin(), all_methods.end()};
  std::vector<unsigned> sizes_mib{1, 16, 64, 256, 1024};
  unsigned iterations = 200;  // rounds of every method, interleaved
  unsigned warmup = 3;        // rounds run first and not counted
  unsigned budget_s = 60;     // per size: fewer rounds rather than a longer run
  std::string exec = "helper";
  bool huge_pages = false;
  bool json = false;
};
int run_cost(const CostOptions& options);

// From a worker's death to its replacement, against the real server (replace.cpp).
struct ReplaceOptions {
  std::string server;
  std::string mode = "fork";
  unsigned iterations = 200;
  // The master counts a worker dying within 1 s of its start as failing to
  // start and backs off; wait longer than that before each kill.
  unsigned settle_ms = 1020;
  unsigned timeout_ms = 5000;  // per replacement
  bool json = false;
};
int run_replace(const ReplaceOptions& options);

}  // namespace spawn_cost
