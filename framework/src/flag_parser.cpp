#include <prefork/exit_status.hpp>
#include <prefork/flag_parser.hpp>

#include <boost/program_options/errors.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace prefork::flags {

namespace {

namespace style = po::command_line_style;

// Program_options' default, less its guessing of abbreviated long flags.
constexpr int parse_style = style::unix_style & ~style::allow_guessing;

UsageError needs_a_value(const std::string& flag) { return UsageError(flag + " needs a value"); }

// Program_options' own parse, its errors in our words.
po::parsed_options run(const std::vector<std::string>& words,
                       const po::options_description& options) {
  try {
    return po::command_line_parser(words).options(options).style(parse_style).run();
  } catch (const po::unknown_option& e) {
    throw UsageError("unknown option '" + e.get_option_name() + "'");
  } catch (const po::invalid_command_line_syntax& e) {
    if (e.kind() == po::invalid_command_line_syntax::extra_parameter)
      throw UsageError(e.get_option_name() + " takes no value");
    if (e.kind() == po::invalid_command_line_syntax::missing_parameter ||
        e.kind() == po::invalid_command_line_syntax::empty_adjacent_parameter)
      throw needs_a_value(e.get_option_name());
    throw UsageError(e.what());
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
}

}  // namespace

po::options_description section(const std::string& title, const std::vector<Help>& flags) {
  po::options_description options(title);
  for (const Help& flag : flags) {
    if (flag.value.empty())
      options.add_options()(flag.name.c_str(), flag.text.c_str());
    else
      options.add_options()(flag.name.c_str(), po::value<std::string>()->value_name(flag.value),
                            flag.text.c_str());
  }
  return options;
}

po::parsed_options parse(const std::vector<std::string>& words,
                         const po::options_description& options) {
  po::parsed_options parsed = run(words, options);
  for (const po::option& option : parsed.options) {
    // original_tokens: the flag, then the words taken as its values.
    for (std::size_t i = 1; i < option.original_tokens.size(); ++i)
      if (option.original_tokens[i].starts_with("--"))
        throw needs_a_value(option.original_tokens[0]);
  }
  return parsed;
}

std::chrono::milliseconds seconds(std::string_view flag, std::string_view text, double low,
                                  double high) {
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (!text.empty() && error == std::errc() && end == text.data() + text.size() &&
      std::isfinite(value) && value >= low && value <= high)
    return std::chrono::milliseconds(std::llround(value * 1000));
  // %g: "0", "86400", "0.5" without trailing zeros.
  char range[64];
  std::snprintf(range, sizeof range, " wants seconds from %g to %g, not '", low, high);
  std::string message(flag);
  message.append(range).append(text).append("'");
  throw UsageError(message);
}

int usage_error(std::string_view program, std::string_view message) {
  std::fprintf(stderr, "%.*s: %.*s\ntry '%.*s --help'\n", static_cast<int>(program.size()),
               program.data(), static_cast<int>(message.size()), message.data(),
               static_cast<int>(program.size()), program.data());
  return exit_usage;
}

std::string help_text(const po::options_description& options) {
  std::ostringstream out;
  out << options;
  std::string text = out.str();
  // Program_options leaves a space at the end of the lines it wraps.
  for (std::size_t space; (space = text.find(" \n")) != std::string::npos;) text.erase(space, 1);
  return text;
}

}  // namespace prefork::flags
