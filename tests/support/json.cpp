// Boost.JSON's implementation, compiled once for every test that parses the
// servers' JSON (it is header-only: each test including <boost/json/src.hpp>
// compiled it again, 8-15 s a file).
#include <boost/json/src.hpp>
