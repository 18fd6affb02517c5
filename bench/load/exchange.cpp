#include "exchange.hpp"

#include <prefork/frame_codec.hpp>

#include <algorithm>

namespace bench {

Exchange make_exchange(const Options& options) {
  std::string payload;
  std::size_t reply_size = 0;
  if (options.reply_size) {
    payload = std::to_string(*options.reply_size) + '\n';
    payload.resize(std::max(options.size, payload.size()), 'x');
    reply_size = *options.reply_size;
  } else {
    // Varied letters, so that an echo or a wrong offset cannot pass the check.
    payload.resize(options.size);
    for (std::size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
    reply_size = payload.size();
  }
  Exchange exchange;
  exchange.payload_size = payload.size();
  exchange.reply_size = reply_size;
  if (options.check == Check::upper) {
    exchange.expected = payload;
    std::transform(payload.begin(), payload.end(), exchange.expected.begin(),
                   [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; });
  }
  exchange.request =
      options.target == Target::framed ? prefork::encode_frame(payload) : std::move(payload);
  return exchange;
}

}  // namespace bench
