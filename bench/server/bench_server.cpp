// bench_server: the handler every server model is measured with (bench/models).
//   bench_server --framed 127.0.0.1:0 --model prefork --accept lock --cpu-us 100
#include <prefork/command_line.hpp>

#include <charconv>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

#include "bench_handler.hpp"

namespace {

unsigned microseconds(std::string_view flag, std::string_view text) {
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() ||
      value > 10'000'000)
    throw std::invalid_argument(std::string(flag) + " wants microseconds from 0 to 10000000");
  return value;
}

// The table of model facts (prefork/models.hpp) as JSON, one model a line,
// for bench/models: what is a pool, what takes --threads, which strategies.
void list_models() {
  for (const prefork::ModelFacts& m : prefork::all_model_facts()) {
    std::printf(
        "{\"name\": \"%s\", \"pool\": %s, \"threads\": %s, \"default_threads\": %u, "
        "\"default_accept\": \"%s\", \"accepts\": [",
        std::string(m.name).c_str(), m.pool ? "true" : "false", m.threads ? "true" : "false",
        prefork::default_threads, std::string(prefork::accept_name(m.default_accept)).c_str());
    for (std::size_t i = 0; i < m.accepts.size(); ++i)
      std::printf("%s\"%s\"", i ? ", " : "",
                  std::string(prefork::accept_name(m.accepts[i])).c_str());
    std::printf("]}\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--list-models") {
    list_models();
    return 0;
  }
  BenchHandler handler;
  prefork::CommandLineDefaults defaults;
  defaults.program = "bench_server";
  defaults.description =
      "The benchmark server: answers \"N\\n...\" with N bytes (Stevens' client), anything else "
      "with itself.";
  defaults.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:8082")}};
  defaults.stats_name = "bench_server";
  defaults.options = {
      {"--io-wait-us", "each request waits this long, CPU idle",
       [&](std::string_view v) { handler.io_wait_us = microseconds("--io-wait-us", v); }, "0"},
      {"--cpu-us", "each request computes this long, CPU busy",
       [&](std::string_view v) { handler.cpu_us = microseconds("--cpu-us", v); }, "0"},
  };
  return prefork::prefork_main(argc, argv, handler, defaults);
}
