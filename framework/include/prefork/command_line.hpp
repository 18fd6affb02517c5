// The command line every prefork server shares.
#pragma once

#include <prefork/server.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

// A flag of the embedder's own, parsed with the common ones: `--flag VALUE`.
// `apply` may throw std::invalid_argument; the message becomes a usage error.
struct ExtraOption {
  std::string flag;  // with the dashes: "--io-wait-us"
  std::string help;  // one line for --help
  std::function<void(std::string_view value)> apply;
};

struct CommandLineDefaults {
  std::string program;                  // for --help and --version
  std::string description;              // one line for --help
  std::vector<ListenerSpec> listeners;  // used when no --tcp/--framed/--udp is given
  std::string stats_name;
  std::vector<ExtraOption> options;   // the program's own flags
  Model model = Model::event;         // when no --model is given
  std::size_t max_message = 1 << 20;  // when no --max-message is given
};

// Parses the common flags into a ServerConfig:
//   --tcp/--framed/--udp HOST:PORT (repeatable), --workers N,
//   --start fork|spawn, --stats NAME, --max-frame BYTES,
//   --graceful-timeout SECONDS, --backlog N, --worker-exe PATH,
//   --help, --version, and `-- ARGS...` for the spawned worker program.
// --help and --version print and exit 0; a bad flag prints the error and
// the usage on stderr and exits 2.
ServerConfig parse_command_line(int argc, char** argv, const CommandLineDefaults& defaults);

// The whole main() of a typical server: the worker role when started as a
// spawned worker, otherwise parse the command line and serve().
int prefork_main(int argc, char** argv, Handler& handler, const CommandLineDefaults& defaults);

// The same with a plain function or lambda as the worker's code (see serve()).
template <typename Function>
requires std::invocable<Function&, const Request&, std::string_view, Reply&>
int prefork_main(int argc, char** argv, Function function, const CommandLineDefaults& defaults) {
  FunctionHandler<Function> handler(std::move(function));
  return prefork_main(argc, argv, static_cast<Handler&>(handler), defaults);
}
template <typename Function>
requires std::invocable<Function&, Connection&>
int prefork_main(int argc, char** argv, Function function, const CommandLineDefaults& defaults) {
  ConnectionFunctionHandler<Function> handler(std::move(function));
  return prefork_main(argc, argv, static_cast<Handler&>(handler), defaults);
}

}  // namespace prefork
