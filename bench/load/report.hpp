// What prefork-bench prints: the progress line (stderr, on a terminal), the
// human summary, and the JSON document (--json; its keys are stable).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "exchange.hpp"
#include "machine.hpp"
#include "options.hpp"
#include "run.hpp"

namespace bench {

void print_progress(double elapsed_s, bool warming_up, std::uint64_t requests, double last_rps,
                    std::uint64_t errors);
void clear_progress();

void print_summary(std::FILE* out, const Options& options, const Exchange& exchange,
                   const RunResult& result, const Machine& machine);

std::string to_json(const Options& options, const Exchange& exchange, const RunResult& result,
                    const Machine& machine);

// "connect: Connection refused", or the reason alone when there is no errno.
std::string describe(const Failure& failure);

}  // namespace bench
