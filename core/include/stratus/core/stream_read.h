// Reading a cpprestsdk response body as it arrives. A producer/consumer buffer answers getn(N) only once N bytes
// are there (or the producer synced, or the body ended), so a quiet stream read with getn(8192) would sit on a
// few bytes; this waits for one byte and then takes what else is there.
#pragma once

#include <cpprest/streams.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace stratus {

// Blocks until at least one byte arrives; returns how many were read into `buf` (at most `n`, n >= 1), 0 at the
// end of the body. Throws what the stream throws (a cancelled or broken request).
inline size_t ReadSome(concurrency::streams::streambuf<uint8_t> in, uint8_t* buf, size_t n) {
  auto c = in.bumpc().get();
  if (c == concurrency::streams::streambuf<uint8_t>::traits::eof()) return 0;
  buf[0] = static_cast<uint8_t>(c);
  size_t more = std::min(static_cast<size_t>(std::max<std::streamsize>(in.in_avail(), 0)), n - 1);
  return 1 + (more > 0 ? in.getn(buf + 1, more).get() : 0);
}

}  // namespace stratus
