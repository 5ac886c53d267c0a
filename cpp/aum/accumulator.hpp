// Per-sample AUM state: for every sample id, its label, the float64 sum of its margins and how
// many margins were added. Partial states over disjoint rows merge; states serialise to bytes.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "aum/errors.hpp"
#include "aum/margin.hpp"
#include "aum/sample_table.hpp"
#include "aum/string_ids.hpp"

namespace aum {

enum class IdKind : uint8_t { integer = 0, string = 1 };

// A row whose label is kNoLabel takes the label its sample already has (e.g. from a labels table).
constexpr int64_t kNoLabel = std::numeric_limits<int64_t>::min();

struct AddOptions {
  // Epoch of the rows: per row (`epochs`, may be null) or one for the whole batch (`epoch`).
  const int64_t* epochs = nullptr;
  int64_t epoch = 0;
  // Rows with this label (the threshold class) are also tallied per epoch; kNoLabel: none.
  int64_t tally_label = kNoLabel;
  bool skip_nonfinite = false;       // false: a NaN/inf row is an error
  bool allow_label_changes = false;  // true: each row uses its own label (the reference's way)
  int threads = 0;                   // 0: all OpenMP threads
  int32_t source = 0;                // who sent the rows (a file number), named in label conflicts
};

struct AddStats {
  int64_t added = 0;    // margins added
  int64_t skipped = 0;  // rows with NaN/inf logits skipped
};

// Per-epoch summary of the margins: all rows, and the rows of the tallied (threshold) class.
// Shows training progress and when threshold samples start being fitted (memorisation).
struct EpochTally {
  int64_t rows = 0;
  double margin_sum = 0.0;
  int64_t tallied_rows = 0;
  int64_t tallied_fitted = 0;  // tallied rows with margin > 0
  double tallied_margin_sum = 0.0;
};

// One sample's state as the outside sees it.
struct SampleState {
  int64_t label;  // kNoLabel if unknown
  double sum;
  int64_t count;
};

class Accumulator {
 public:
  // always_direct: see SampleTable (the default suits everyone; tests change it).
  Accumulator(int64_t classes, IdKind id_kind, int64_t always_direct = SampleTable::kAlwaysDirect);

  // Adds one margin per row. keys are sample ids (or StringIds codes). All-or-nothing: on any
  // error (RowError names the row) the state is left as it was.
  AddStats add(const LogitBlock& block, const int64_t* labels, const int64_t* keys,
               const AddOptions& options);

  // The same for margins computed elsewhere (compact logs): rows of (margin, label, key).
  AddStats add_margins(const double* margins, int64_t rows, const int64_t* labels,
                       const int64_t* keys, const AddOptions& options);

  // Known labels (from a labels table) for samples that may appear later without a label.
  // All-or-nothing, like add.
  void set_labels(const int64_t* keys, const int64_t* labels, int64_t n, int32_t source);

  // How many samples to expect (a hint from the log's first file): tables are sized for them
  // when first needed instead of growing step by step.
  void expect_samples(int64_t samples);

  // Adds another partial state (same classes and id kind) into this one.
  void merge(const Accumulator& other, bool allow_label_changes);
  // This state as `shards` states: sample i (in keys() order) goes to shard_of_sample[i], or
  // nowhere if < 0; shard 0 carries the totals and tallies. Defined in shard.cpp.
  std::vector<Accumulator> split(const int32_t* shard_of_sample, int32_t shards) const;

  std::string serialize() const;
  static Accumulator deserialize(const char* data, size_t size);

  int64_t classes() const { return classes_; }
  IdKind id_kind() const { return id_kind_; }
  int64_t num_slots() const { return static_cast<int64_t>(order_.size()); }
  int64_t rows_added() const { return rows_added_; }
  int64_t rows_skipped() const { return rows_skipped_; }
  // Sample ids (or string codes) in order of first appearance; state() gives their state.
  const std::vector<int64_t>& keys() const { return order_; }
  SampleState state(int64_t key) const;
  // Every sample's label (kNoLabel if unknown), sum and count, in the order of keys(), on
  // `threads` threads (0: all) for many samples. With `keys_out`, also keys() copied there;
  // with `aums`, sums holds each sample's AUM instead (sum / count: NaN without margins).
  void gather(int64_t* labels, double* sums, int64_t* counts, int threads = 0,
              int64_t* keys_out = nullptr, bool aums = false) const;
  const std::map<int64_t, EpochTally>& epoch_tallies() const { return tallies_; }
  const SampleTable& table() const { return table_; }
  StringIds& strings() { return strings_; }
  const StringIds& strings() const { return strings_; }

  std::string describe_key(int64_t key) const;  // "42" or "'cat_17'"

 private:
  struct LabelUndo {
    int64_t ref;  // see SampleTable::refs_for
    int32_t label, source;
  };
  // How a pass over the rows treats them (see add()).
  enum class Pass { validate, scatter };

  Slot* slot_for(int64_t key);  // creating the sample if new
  template <typename FillMargins>
  AddStats add_rows(int64_t rows, const int64_t* labels, const int64_t* keys,
                    const AddOptions& options, FillMargins fill_margins);
  template <Pass kPass>
  void run_pass(const int64_t* labels, const int64_t* keys, const int64_t* refs, int64_t rows,
                const AddOptions& options, int64_t* row_labels, AddStats* stats);
  bool scatter_parallel(const int64_t* labels, const int64_t* keys, const int64_t* refs,
                        int64_t rows, const AddOptions& options, AddStats* stats);
  EpochTally* batch_tally(int64_t epoch);
  void tally_rows(const int64_t* labels, int64_t rows, const AddOptions& options);
  void undo_scatter(const int64_t* refs, int64_t rows_done);
  void start_new_samples(size_t rows);
  std::vector<int64_t>& fresh() { return fresh_in_order_ ? order_ : new_samples_; }
  const std::vector<int64_t>& fresh() const { return fresh_in_order_ ? order_ : new_samples_; }
  const int64_t* new_keys() const { return fresh().data() + fresh_from_; }
  size_t new_count() const { return fresh().size() - fresh_from_; }
  size_t samples_before_batch() const { return fresh_in_order_ ? fresh_from_ : order_.size(); }
  void join_new_samples();
  void end_new_samples();
  void set_new_sources(int32_t source);
  int32_t label_source(const Slot* slot, int32_t batch_source);
  void roll_back();  // of the batch being added: its label changes, its new samples

  int64_t classes_;
  IdKind id_kind_;
  SampleTable table_;
  std::vector<int64_t> order_;  // keys in order of first appearance
  StringIds strings_;
  std::map<int64_t, EpochTally> tallies_;
  int64_t rows_added_ = 0;
  int64_t rows_skipped_ = 0;
  // Per-batch scratch, kept so that a batch allocates nothing once the sizes have settled.
  std::vector<int64_t> row_refs_;
  // Keys of the samples the batch being added created, in row order: appended to order_ itself
  // when it has room for the whole batch (a first epoch: expect_samples made it), else to
  // new_samples_, which joins order_ when the batch is in (room in order_ for the whole run's
  // samples plus a batch would mean copying it once it is full). See start_new_samples.
  std::vector<int64_t> new_samples_;
  bool fresh_in_order_ = false;  // where they go: order_ or new_samples_
  size_t fresh_from_ = 0;        // the batch's first one there
  int64_t last_batch_rows_ = 0, last_batch_new_samples_ = 0;  // see scatter_parallel
  std::vector<int64_t> row_labels_;
  std::vector<double> row_margins_;
  std::vector<double> sum_undo_;  // each row's sample sum before the row was added
  std::vector<LabelUndo> label_undo_;
  std::vector<std::pair<int64_t, EpochTally>> batch_tallies_;  // committed when the batch is
  // One per thread of scatter_parallel.
  struct Part {
    std::vector<int32_t> rows;    // the batch rows of this thread's samples, in row order
    std::vector<double> sum_undo;  // the sample's sum before each of those rows was added
    std::vector<int32_t> created;  // those rows that made their sample, in row order
    size_t merged = 0;             // how many of them joined new_samples_
    int64_t owned = 0, done = 0, skipped = 0;  // rows of this thread's samples, rows added
    int64_t error_row = -1;
    int32_t error_source = kNoSource;
    std::string error;
    std::vector<LabelUndo> label_undo;
  };
  std::vector<Part> parts_;
};

}  // namespace aum
