// String sample ids -> dense int64 codes (0, 1, ... in order of first appearance), so the
// accumulator only ever sees int64 keys.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace aum {

class StringIds {
 public:
  // Codes for n strings laid out as Arrow does: string i is data[offsets[i], offsets[i + 1]).
  // Offsets are checked against data_size before any byte is read.
  template <typename Offset>
  void intern(const Offset* offsets, int64_t n, const char* data, int64_t data_size,
              int64_t* codes);

  int64_t intern_one(std::string_view s);
  const std::string& at(int64_t code) const { return strings_.at(static_cast<size_t>(code)); }
  int64_t size() const { return static_cast<int64_t>(strings_.size()); }

 private:
  std::vector<std::string> strings_;
  // Keys are owned copies: simple and safe; ids are short.
  std::unordered_map<std::string, int64_t> codes_;
};

}  // namespace aum
