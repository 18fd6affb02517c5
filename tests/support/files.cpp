#include "files.hpp"

#include <fstream>
#include <sstream>

namespace prefork::test {

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace prefork::test
