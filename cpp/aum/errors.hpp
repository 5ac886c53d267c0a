// Errors the core reports. The core knows nothing of files; it names the row within the batch
// (and, for label conflicts, where the earlier label came from) so the caller can name the file.
#pragma once
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace aum {

// Marks "no source": the error is about this row alone.
constexpr int32_t kNoSource = std::numeric_limits<int32_t>::min();
// Sources of a label that are not a log file (log files are numbered 0, 1, ...).
constexpr int32_t kLabelsSource = -1;  // the separate labels table
constexpr int32_t kStateSource = -2;   // a merged or loaded state

// Bad value in row `row` of the batch being added. Thrown before the state is changed.
class RowError : public std::invalid_argument {
 public:
  RowError(const std::string& what, int64_t row, int32_t source = kNoSource)
      : std::invalid_argument(what), row(row), source(source) {}
  int64_t row;     // 0-based row within the batch
  int32_t source;  // where a conflicting earlier label came from, or kNoSource
};

}  // namespace aum
