// How prefork's programs read their flags, on Boost.Program_options: the
// servers' common flags (command_line.cpp), prefork-bench and spawn-cost.
//
// Long flags are spelled out (no abbreviations), as `--flag VALUE` or
// `--flag=VALUE`; `-h` is --help. A bad command line is one line naming the
// flag, then one hint line, and exit status 2 (usage_error()).
//
// Master-layer code in framework/internal/: for the programs of this tree,
// never installed.
#pragma once

#include <prefork/core/decimal.hpp>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>

#include <chrono>
#include <concepts>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::flags {

namespace po = boost::program_options;

// A bad command line; what() is one line that names the flag.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One flag as --help shows it: its name ("workers"; "help,h" with a short
// form), the name of its value ("N"; empty: a flag without a value), and
// what it does.
struct Help {
  std::string name;
  std::string value;
  std::string text;
};

// One section of --help, for parse() and help_text().
po::options_description section(const std::string& title, const std::vector<Help>& flags);

// The flags and other words of `words` (the command line without the program
// name), in the order given: a word that is not a flag has an empty
// `string_key`. Throws UsageError: an unknown flag
// ("unknown option '--x'"), or one without its value ("--workers needs a
// value"), also when the next word is a flag (`--workers --stats x`), which
// Program_options 1.81 would take as the value. A value that starts with
// "--" can still be given as `--flag=--value`.
po::parsed_options parse(const std::vector<std::string>& words,
                         const po::options_description& options);

// A flag's value as a whole decimal number in [low, high]; `alternative`
// names the word also accepted (for the message), e.g. "auto".
template <std::integral Number>
Number number(std::string_view flag, std::string_view text, Number low, Number high,
              std::string_view alternative = {}) {
  if (auto value = parse_decimal<Number>(text); value && *value >= low && *value <= high)
    return *value;
  std::string message(flag);
  message += " wants a number from " + std::to_string(low) + " to " + std::to_string(high);
  if (!alternative.empty()) message.append(" or ").append(alternative);
  message.append(", not '").append(text).append("'");
  throw UsageError(message);
}

// A flag's value in seconds, a decimal number in [low, high] ("2.5", "10"),
// rounded to milliseconds.
std::chrono::milliseconds seconds(std::string_view flag, std::string_view text, double low,
                                  double high);

// On stderr: "<program>: <message>" and "try '<program> --help'". Returns 2.
int usage_error(std::string_view program, std::string_view message);

// `options` as Program_options lays them out for --help.
std::string help_text(const po::options_description& options);

}  // namespace prefork::flags
