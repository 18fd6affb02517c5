// slow_start_server: a test server (built with the tests only) whose workers
// take a while to become ready: upper_server's handler, with a setup() that
// sleeps --setup-delay-ms first. A worker's start is then long enough for a
// test to see what the master does meanwhile (integration_master: a
// recycled worker must serve on until its replacement is ready).
#include <prefork/command_line.hpp>

#include <cctype>
#include <charconv>
#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace {

class SlowStartUpper final : public prefork::Handler {
 public:
  unsigned setup_delay_ms = 0;

  void setup(const prefork::WorkerInfo&) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(setup_delay_ms));
  }

  void handle(const prefork::Request&, std::string_view data, prefork::Reply& reply) override {
    auto out = reply.allocate(data.size());
    for (std::size_t i = 0; i < data.size(); ++i)
      out[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(data[i])));
  }
};

unsigned milliseconds(std::string_view text) {
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value > 60'000)
    throw std::invalid_argument("--setup-delay-ms wants milliseconds from 0 to 60000");
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  SlowStartUpper handler;
  prefork::CommandLineDefaults defaults;
  defaults.program = "slow_start_server";
  defaults.description = "Answers in upper case, each worker ready only after --setup-delay-ms.";
  defaults.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")}};
  defaults.stats_name = "slow_start_server";
  defaults.options = {{"--setup-delay-ms", "each worker's setup() sleeps this long",
                       [&](std::string_view v) { handler.setup_delay_ms = milliseconds(v); }, "0"}};
  return prefork::prefork_main(argc, argv, handler, defaults);
}
