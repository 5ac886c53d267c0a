#include "aum/string_ids.hpp"

#include <stdexcept>

#include "aum/errors.hpp"

namespace aum {

int64_t StringIds::intern_one(std::string_view s) {
  auto [it, inserted] = codes_.try_emplace(std::string(s), static_cast<int64_t>(strings_.size()));
  if (inserted) strings_.emplace_back(s);
  return it->second;
}

template <typename Offset>
void StringIds::intern(const Offset* offsets, int64_t n, const char* data, int64_t data_size,
                       int64_t* codes) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = static_cast<int64_t>(offsets[i]);
    const int64_t end = static_cast<int64_t>(offsets[i + 1]);
    if (begin < 0 || end < begin || end > data_size)
      throw RowError("string offsets are corrupt", i);
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = static_cast<int64_t>(offsets[i]);
    const int64_t end = static_cast<int64_t>(offsets[i + 1]);
    codes[i] = intern_one(std::string_view(data + begin, static_cast<size_t>(end - begin)));
  }
}

template void StringIds::intern<int32_t>(const int32_t*, int64_t, const char*, int64_t, int64_t*);
template void StringIds::intern<int64_t>(const int64_t*, int64_t, const char*, int64_t, int64_t*);

}  // namespace aum
