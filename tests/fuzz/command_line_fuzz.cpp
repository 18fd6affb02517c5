// The command line on any words (the input split at NUL bytes): parsing
// ends in a configuration or a usage error, never a crash or an exception.
#include <prefork/command_line.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> words{"server"};
  std::string word;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      words.push_back(word);
      word.clear();
    } else {
      word.push_back(static_cast<char>(data[i]));
    }
  }
  words.push_back(word);
  // Words that would read files or start servers are not the parser's.
  for (const std::string& w : words)
    if (w.rfind("--config", 0) == 0 || w.rfind("--log-file", 0) == 0 ||
        w.rfind("--pid-file", 0) == 0)
      return 0;
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  prefork::CommandLineDefaults defaults;
  try {
    prefork::CommandLine result =
        prefork::parse_command_line(static_cast<int>(words.size()), argv.data(), defaults);
    (void)result;
  } catch (...) {
    std::abort();  // a bad command line is a usage error, never an exception
  }
  return 0;
}
