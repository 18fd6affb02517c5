// The command line every prefork server shares, and prefork_main(), the
// whole main() of a typical server.
#pragma once

#include <prefork/server.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

// A flag of the embedder's own, parsed with the common ones: `--flag VALUE`
// or `--flag=VALUE`. `apply` may throw std::invalid_argument; the message
// becomes a usage error.
struct ExtraOption {
  std::string flag;  // with the dashes: "--io-wait-us"
  std::string help;  // one line for --help
  std::function<void(std::string_view value)> apply;
};

struct CommandLineDefaults {
  std::string program;                  // for --help, --version and error messages
  std::string description;              // one line for --help
  std::vector<ListenerSpec> listeners;  // used when no --tcp/--framed/--udp is given
  std::string stats_name;
  std::vector<ExtraOption> options;   // the program's own flags
  Model model = Model::event;         // when no --model is given
  std::size_t max_message = 1 << 20;  // when no --max-message is given
};

// What parse_command_line() found: a configuration to serve, or the status
// to exit with now, the user's text already printed.
struct CommandLine {
  // Set when the server should run: pass it to serve().
  std::optional<ServerConfig> config;
  // Without a config: exit_ok after --help or --version (printed on stdout),
  // exit_usage after a bad command line (one line naming the problem and a
  // hint, "try 'PROGRAM --help'", on stderr).
  int exit_status = exit_ok;
};

// For callers that run the server themselves: reads the common flags into a
// ServerConfig. It prints and returns; it never ends the process.
//   --tcp/--framed/--udp HOST:PORT (repeatable, kept in the order given),
//   --backlog N, --max-message BYTES (--max-frame: the same),
//   --workers N|auto, --start fork|spawn, --worker-exe PATH,
//   --model NAME, --accept NAME, --threads N, --graceful-timeout SECONDS,
//   --stats NAME, --metrics HOST:PORT, --worker-stats on|off,
//   the program's own defaults.options, --help (-h), --version,
//   and `-- ARGS...`: the arguments of the spawned worker program.
// A flag given twice counts the last time. Throws std::invalid_argument when
// defaults.options names a flag that already exists (a programming error).
CommandLine parse_command_line(int argc, char** argv, const CommandLineDefaults& defaults);

// The whole main() of a typical server: the worker role when started as a
// spawned worker, otherwise parse the command line and serve(). Returns the
// status for main() to return (parse_command_line's, or serve()'s).
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
