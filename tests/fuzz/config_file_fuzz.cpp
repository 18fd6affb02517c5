// The --config reader on any bytes: a TOML file is read into flag words or
// rejected with a message naming the file and the line, never a crash.
#include <prefork/flag_parser.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/prefork_fuzz_config_" + std::to_string(::getpid());
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) std::abort();
  std::fwrite(data, 1, size, file);
  std::fclose(file);
  try {
    // What the keys mean is the flag table's business; '' = 1 is valid TOML.
    for (const prefork::ConfigEntry& entry : prefork::read_config_file(path))
      if (!entry.array && entry.values.size() != 1) std::abort();
  } catch (const prefork::flags::UsageError& e) {
    // Every refusal names the file.
    if (std::string(e.what()).rfind(path, 0) != 0) std::abort();
  }
  std::remove(path.c_str());
  return 0;
}
