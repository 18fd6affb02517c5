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
// or `--flag=VALUE`, or in a --config file as `flag = VALUE` (a string, a
// number or a boolean, given to `apply` as the command line would spell it:
// "25", "2.5", "true"). `apply` may throw std::invalid_argument; the message
// becomes a usage error. With a file, `apply` hears the file's value first,
// then the command line's.
struct ExtraOption {
  std::string flag;  // with the dashes: "--io-wait-us"
  std::string help;  // one line for --help ("(default X)" is added from `initial`)
  std::function<void(std::string_view value)> apply;
  // What `apply` hears first each time the configuration is read, so that a
  // key removed from the --config file before a SIGHUP goes back to it, as
  // prefork's own keys do. Without it, the value last applied stays.
  std::optional<std::string> initial = std::nullopt;
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
  // Without a config: exit_ok after --help, --version or a --check-config
  // that passed ("configuration ok"; all printed on stdout), exit_usage
  // after a bad command line or configuration file (one line naming the
  // problem and a hint, "try 'PROGRAM --help'", on stderr).
  int exit_status = exit_ok;
  // With exit_usage: the problem, the line printed without the program's
  // name and the hint ("prefork.toml:7: unknown key 'wokers'"), for a caller
  // that logs it instead.
  std::string error;
  // Set with a config: reads the configuration again, as the master does on
  // SIGHUP: the same command line and the same --config file, re-read (the
  // flags still override the file). It prints nothing: a bad configuration
  // comes back without a config, its reason in `error`. The program's own
  // options (defaults.options) hear their values again.
  std::function<CommandLine()> reload;
};

// For callers that run the server themselves: reads the common flags into a
// ServerConfig. It prints and returns; it never ends the process.
//   --tcp/--framed/--udp HOST:PORT (repeatable, kept in the order given),
//   --backlog N, --max-message BYTES (--max-frame: the same),
//   --workers N|auto, --start fork|spawn, --worker-exe PATH,
//   --model NAME, --accept NAME, --threads N, --graceful-timeout SECONDS,
//   --stats NAME, --metrics HOST:PORT, --worker-stats on|off,
//   --log-level LEVEL, --log-format text|json, --log-file PATH,
//   the program's own defaults.options,
//   --config FILE, --check-config, --help (-h), --version,
//   and `-- ARGS...`: the arguments of the spawned worker program.
// A flag given twice counts the last time. With --config FILE, every flag
// but --config, --check-config, --help and --version is also a key of the
// TOML file, its name without the dashes (`workers = 4`, `framed =
// ["127.0.0.1:9000"]`, `worker-stats = false`); a flag on the command line
// wins over the file's key, and any listener flag replaces all the file's
// listeners. Throws std::invalid_argument when defaults.options names a
// flag that already exists (a programming error).
CommandLine parse_command_line(int argc, char** argv, const CommandLineDefaults& defaults);

// The whole main() of a typical server: the worker role when started as a
// spawned worker, otherwise parse the command line and serve(). Returns the
// status for main() to return (parse_command_line's, or serve()'s). What
// only the handler decides (a ConnectionHandler needs a blocking model) is
// checked with the rest, by --check-config and ServerConfig::reload too.
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
