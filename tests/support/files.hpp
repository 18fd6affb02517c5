// Files the tests read back whole: a log, the README, a segment.
#pragma once

#include <string>

namespace prefork::test {

// What `path` holds; "" when it cannot be read.
std::string file_text(const std::string& path);

}  // namespace prefork::test
