#include "aum/accumulator.hpp"

#include <cmath>
#include <memory>

#include <stdexcept>
#include <type_traits>
#include <utility>

#include "aum/errors.hpp"
#include "aum/parallel.hpp"

namespace aum {
namespace {

// Rows between the prefetch of a sample's slot and its use. The slots of a million samples do
// not fit in cache, and this VM's memory latency needs ~100 rows of cheap work to hide (measured:
// 16 rows ahead costs 6.6 ns/row, 128 rows ahead 2 ns/row on 500K samples).
constexpr int64_t kAhead = 128;

std::string outside(int64_t label, int64_t classes) {
  return "label " + std::to_string(label) + " is outside [0, " + std::to_string(classes) + ")";
}

std::string too_many(const std::string& sample) {
  return "sample " + sample + " has " + std::to_string(kMaxCount) +
         " margins already (the most a sample can have)";
}

std::string label_conflict(const std::string& sample, int64_t here, int64_t before) {
  return "sample " + sample + " has label " + std::to_string(here) + " here but label " +
         std::to_string(before) + " before";
}

int64_t wide(int32_t label) { return label == kNoLabel32 ? kNoLabel : label; }

// The first row whose label is neither kNoLabel nor in [0, classes), or -1; counts the rows
// without a label. Only for a batch with NaN margins (the kernels catch such labels). The
// all-good case is one branch-free pass, on `threads` threads for a big batch.
int64_t first_bad_label(const int64_t* labels, int64_t rows, int64_t classes, int64_t& unlabeled,
                        int threads) {
  int bad = 0;
  int64_t none = 0;
  const int team = rows >= (int64_t{1} << 16) ? resolve_threads(threads) : 1;
  (void)team;  // unused without OpenMP
#pragma omp parallel for num_threads(team) schedule(static) reduction(| : bad) reduction(+ : none)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t l = labels[r];
    const bool missing = l == kNoLabel;
    none += missing;
    bad |= !missing & (static_cast<uint64_t>(l) >= static_cast<uint64_t>(classes));
  }
  unlabeled = none;
  if (!bad) return -1;
  for (int64_t r = 0; r < rows; ++r)
    if (labels[r] != kNoLabel && (labels[r] < 0 || labels[r] >= classes)) return r;
  return -1;
}

int64_t first_nan(const std::vector<double>& values) {
  for (size_t r = 0; r < values.size(); ++r)
    if (values[r] != values[r]) return static_cast<int64_t>(r);
  return -1;
}

// Room for `more` entries without reallocating (so pushing cannot fail half-way through a
// batch); grows geometrically, not by exactly `more`.
template <typename T>
void make_room(std::vector<T>& v, size_t more) {
  const size_t need = v.size() + more;
  if (v.capacity() < need) v.reserve(need > 2 * v.capacity() ? need : 2 * v.capacity());
}

}  // namespace

Accumulator::Accumulator(int64_t classes, IdKind id_kind, int64_t always_direct)
    : classes_(classes), id_kind_(id_kind), table_(always_direct) {
  if (classes < 2)
    throw std::invalid_argument("need at least 2 classes, got " + std::to_string(classes));
  if (classes > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("more than 2^31 - 1 classes are not supported");
}

std::string Accumulator::describe_key(int64_t key) const {
  if (id_kind_ == IdKind::string) return "'" + std::string(strings_.at(key)) + "'";
  return std::to_string(key);
}

SampleState Accumulator::state(int64_t key) const {
  const Slot* s = table_.find(key);
  if (s == nullptr) throw std::out_of_range("no sample " + describe_key(key));
  return SampleState{wide(s->label), s->sum, s->count};
}

void Accumulator::gather(int64_t* labels, double* sums, int64_t* counts, int threads,
                         int64_t* keys_out, bool aums) const {
  // Samples come in order of first appearance: random order in the direct slots, whose lines
  // are prefetched some samples ahead, and usually the order of the hashed slots, read in
  // order (SampleTable::slot_in_order). When that order does not hold (a thread's guesses
  // miss often), the rest of its samples' refs are looked up in one pass, then their slots
  // read with prefetching.
  const int64_t n = num_slots();
  const bool direct = table_.all_direct();
  // (Not a vector, which would zero it: its pages are only touched where a thread needs them.)
  std::unique_ptr<int64_t[]> looked_up(direct ? nullptr : new int64_t[static_cast<size_t>(n)]);
  const int team = n >= (int64_t{1} << 16) ? resolve_threads(threads) : 1;
  (void)team;  // unused without OpenMP
  auto run = [&](auto as_aums) {  // the loops compiled for sums and for AUMs
    auto put = [&](int64_t i, const Slot* s) {
      labels[i] = wide(s->label);
      if constexpr (decltype(as_aums)::value)
        sums[i] = s->sum / s->count;
      else
        sums[i] = s->sum;
      counts[i] = s->count;
      if (keys_out) keys_out[i] = order_[i];
    };
#pragma omp parallel num_threads(team)
    {
      const auto [begin, end] = my_rows(n);
      int64_t i = begin, next = 0, missed = 0;
      for (; i < end && missed * 16 <= i - begin + 1024; ++i) {
        if (i + kAhead < end) table_.prefetch_if_direct(order_[i + kAhead]);
        put(i, table_.slot_in_order(order_[i], next, missed));
      }
      if (i < end) {
        table_.refs_of(order_.data() + i, end - i, looked_up.get() + i);
        for (; i < end; ++i) {
          if (i + kAhead < end) table_.prefetch_ref(looked_up[i + kAhead]);
          put(i, table_.at(looked_up[i]));
        }
      }
    }
  };
  if (aums)
    run(std::true_type{});
  else
    run(std::false_type{});
}

void Accumulator::expect_samples(int64_t samples) {
  if (samples <= 0) return;
  if (order_.empty()) order_.reserve(static_cast<size_t>(samples));
  table_.expect(samples);
  strings_.expect(samples);
}

Slot* Accumulator::slot_for(int64_t key) {
  Slot* slot = table_.find_or_add(key);
  if (table_.activate(slot)) order_.push_back(key);  // room was made: cannot throw
  return slot;
}

// One pass over the rows in row order, each row touching its sample's slot once:
//  - validate: create samples, check labels (a row without one takes its sample's; a labelled
//    row sets or must match it) and write each row's label to row_labels.
//  - scatter: the same checks, then add each row's margin (NaN: a skipped row) to its sample
//    and to the batch's epoch tallies. Old sums go to sum_undo_ so that a failure in a later row
//    can be undone exactly.
// Sums are sequential float64 sums in row order, as in the reference.
template <Accumulator::Pass kPass>
void Accumulator::run_pass(const int64_t* labels, const int64_t* keys, const int64_t* refs,
                           int64_t rows, const AddOptions& options, int64_t* row_labels,
                           AddStats* stats) {
  constexpr bool kScatter = kPass == Pass::scatter;
  if (kScatter && scatter_parallel(labels, keys, refs, rows, options, stats)) return;
  const double* margins = row_margins_.data();
  double* sum_undo = sum_undo_.data();
  // The current epoch's tally is summed in locals (through a pointer, every row would wait for
  // the previous row's store) and written back when the epoch changes and at the end.
  int64_t epoch = options.epochs ? options.epochs[0] : options.epoch;
  EpochTally* stored = kScatter ? batch_tally(epoch) : nullptr;
  EpochTally t = kScatter ? *stored : EpochTally{};
  int64_t skipped = 0;
  int64_t r = 0;
  try {
    for (; r < rows; ++r) {
      if (r + kAhead < rows) table_.prefetch_ref(refs[r + kAhead]);
      const int64_t key = keys[r];
      Slot* slot = table_.at(refs[r]);
      const bool created = table_.activate(slot);
      if (created) fresh().push_back(key);  // room was made: cannot throw
      int64_t label = labels[r];
      if (label == kNoLabel) {
        if (slot->label == kNoLabel32)
          throw RowError("sample " + describe_key(key) + " has no label", r);
        label = slot->label;
      } else if (label != slot->label) {
        if (slot->label != kNoLabel32 && !options.allow_label_changes)
          throw RowError(label_conflict(describe_key(key), label, slot->label), r,
                         label_source(slot, options.source));
        // A sample created by this batch needs no undo (a roll-back removes it), and gets its
        // source when the batch is in (set_new_sources).
        if (!created) {
          table_.prepare_source(options.source);  // may throw: before the row changes anything
          label_undo_.push_back({refs[r], slot->label, table_.source(slot)});
          table_.set_source(slot, options.source);
        }
        slot->label = static_cast<int32_t>(label);
      }
      if (row_labels) row_labels[r] = label;
      if (!kScatter) continue;
      const double margin = margins[r];
      if (margin != margin) {  // NaN: a row of NaN/inf logits being skipped
        ++skipped;
        continue;
      }
      if (options.epochs && options.epochs[r] != epoch) {
        *stored = t;
        epoch = options.epochs[r];
        stored = batch_tally(epoch);  // before the sums: the last thing here that can throw
        t = *stored;
      }
      if (slot->count == kMaxCount) throw RowError(too_many(describe_key(key)), r);
      sum_undo[r] = slot->sum;
      slot->sum += margin;
      slot->count += 1;
      t.rows += 1;
      t.margin_sum += margin;
      // Branch-free: threshold-sample rows come in no pattern. Adding +0.0 changes no sum (a
      // sum that starts at +0.0 is never -0.0).
      const bool tallied = label == options.tally_label;
      t.tallied_rows += tallied;
      t.tallied_fitted += tallied & (margin > 0.0);
      t.tallied_margin_sum += tallied ? margin : 0.0;
    }
  } catch (...) {
    if (kScatter) undo_scatter(refs, r);
    throw;
  }
  if (kScatter) {
    *stored = t;
    stats->skipped += skipped;
  }
}

// The scatter pass on several threads, when the batch is big enough (returns false if not).
// Samples are split between threads by blocks of 64 slots (2 KB: no cache line is shared), so
// each thread sees all rows of its samples, in row order: every per-sample sum is the same
// sequential sum as on one thread. The epoch tallies, sums over all rows, are then added up in
// row order on one thread. A row's slot was prefetched rows ahead, as in run_pass; with two
// threads, twice the cache misses are in flight. Everything a thread writes per row (old sums,
// rows that made a sample) is its own: rows of both threads interleave, and writing into one
// array indexed by row made every line of it bounce between the cores (measured: 16-19 ns a
// row on 2 threads, 14 ns like this).
bool Accumulator::scatter_parallel(const int64_t* labels, const int64_t* keys, const int64_t* refs,
                                   int64_t rows, const AddOptions& options, AddStats* stats) {
  const int threads = resolve_threads(options.threads);
  if (threads < 2 || rows < (int64_t{1} << 15) || rows > INT32_MAX) return false;
  // Batches that create many samples (a first epoch) go faster on one thread; the last batch
  // tells (measured at 1M samples, 2 threads: a first-epoch batch 10-40% slower in parallel,
  // a later one 15% faster).
  if (samples_before_batch() == 0 || last_batch_new_samples_ * 8 > last_batch_rows_) return false;
  if (parts_.size() < static_cast<size_t>(threads)) parts_.resize(static_cast<size_t>(threads));
  const size_t new_before = new_count();
  const double* margins = row_margins_.data();
  int team = 1;
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_index(), n = team_size();
#pragma omp single
    team = n;
    Part& part = parts_[static_cast<size_t>(t)];
    part.done = part.skipped = part.owned = 0;
    part.error_row = -1;
    part.label_undo.clear();
    part.created.clear();
    int64_t i = 0;
    try {
      // This thread's rows, compacted without a branch (which would mispredict half the time).
      int owner[64];
      for (int b = 0; b < 64; ++b) owner[b] = b % n;
      if (part.rows.size() < static_cast<size_t>(rows)) {
        part.rows.resize(static_cast<size_t>(rows));
        part.sum_undo.resize(static_cast<size_t>(rows));
      }
      int32_t* mine = part.rows.data();
      double* sum_undo = part.sum_undo.data();
      int64_t count = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t ref = refs[r];
        const uint64_t block = static_cast<uint64_t>(ref < 0 ? ~ref : ref) >> 6;
        mine[count] = static_cast<int32_t>(r);
        count += owner[block & 63] == t;
      }
      part.owned = count;
      part.created.reserve(static_cast<size_t>(count));  // (no allocation in the loop below)
      for (; i < count; ++i) {
        if (i + kAhead < count) table_.prefetch_ref(refs[mine[i + kAhead]]);
        const int64_t r = mine[i];
        const int64_t key = keys[r];
        Slot* slot = table_.at(refs[r]);
        const bool created = table_.activate(slot, false);
        if (created) part.created.push_back(static_cast<int32_t>(r));
        const int64_t label = labels[r];
        if (label != slot->label) {
          if (slot->label != kNoLabel32 && !options.allow_label_changes) {
            part.error = label_conflict(describe_key(key), label, slot->label);
            // Made by an earlier row of this batch (then its source set the label)? That row
            // is this thread's too: a sample's rows all are.
            bool made = false;
            for (const int32_t c : part.created) made |= keys[c] == key;
            part.error_source = made ? options.source : label_source(slot, options.source);
            part.error_row = r;
            break;
          }
          // (Sources are set after the threads, on one: see below.)
          if (!created) part.label_undo.push_back({refs[r], slot->label, table_.source(slot)});
          slot->label = static_cast<int32_t>(label);
        }
        const double margin = margins[r];
        if (margin != margin) {
          ++part.skipped;
          continue;
        }
        if (slot->count == kMaxCount) {
          part.error = too_many(describe_key(key));
          part.error_source = kNoSource;
          part.error_row = r;
          break;
        }
        sum_undo[i] = slot->sum;
        slot->sum += margin;
        slot->count += 1;
      }
      part.done = i;
    } catch (const std::exception& e) {  // allocation failures: nothing may leave the region
      part.done = i;  // rows before i are in; row i added nothing but maybe its new sample
      part.error = e.what();
      part.error_source = kNoSource;
      part.error_row = rows;  // after every row error
    }
  }
  // The first failing row in row order is the batch's error, as on one thread.
  const Part* failed = nullptr;
  for (int t = 0; t < team; ++t) {
    const Part& part = parts_[static_cast<size_t>(t)];
    if (part.error_row >= 0 && (!failed || part.error_row < failed->error_row)) failed = &part;
  }
  std::string what;
  if (!failed) {
    try {
      tally_rows(labels, rows, options);
      for (int t = 0; t < team; ++t)
        if (!parts_[static_cast<size_t>(t)].label_undo.empty()) table_.prepare_source(options.source);
    } catch (const std::exception& e) {
      what = e.what();
    }
  }
  if (failed || !what.empty()) {  // undo every thread's rows, last first
    for (int t = 0; t < team; ++t) {
      Part& part = parts_[static_cast<size_t>(t)];
      for (int64_t i = part.done - 1; i >= 0; --i) {
        const int64_t r = part.rows[static_cast<size_t>(i)];
        if (margins[r] != margins[r]) continue;
        Slot* slot = table_.at(refs[r]);
        slot->sum = part.sum_undo[static_cast<size_t>(i)];
        slot->count -= 1;
      }
      for (auto it = part.label_undo.rbegin(); it != part.label_undo.rend(); ++it)
        table_.at(it->ref)->label = it->label;
      for (const int32_t r : part.created) table_.deactivate(keys[r], false);
    }
    if (!what.empty() || failed->error_row >= rows)
      throw std::runtime_error(what.empty() ? failed->error : what);
    throw RowError(failed->error, failed->error_row, failed->error_source);
  }
  for (int t = 0; t < team; ++t)  // the sources of the labels the threads changed
    for (const LabelUndo& changed : parts_[static_cast<size_t>(t)].label_undo)
      table_.set_source(table_.at(changed.ref), options.source);
  // New samples in row order: the threads' lists (each in row order) merged. Nothing here
  // allocates (start_new_samples made room): the batch is in, this cannot throw.
  for (int t = 0; t < team; ++t) parts_[static_cast<size_t>(t)].merged = 0;
  for (;;) {
    Part* from = nullptr;
    int32_t first = INT32_MAX;
    for (int t = 0; t < team; ++t) {
      Part& part = parts_[static_cast<size_t>(t)];
      if (part.merged < part.created.size() && part.created[part.merged] < first)
        first = part.created[part.merged], from = &part;
    }
    if (from == nullptr) break;
    ++from->merged;
    fresh().push_back(keys[first]);
  }
  table_.add_samples(static_cast<int64_t>(new_count() - new_before));
  for (int t = 0; t < team; ++t) stats->skipped += parts_[static_cast<size_t>(t)].skipped;
  return true;
}

// The batch's working copy of an epoch's tally (committed only if the batch succeeds).
EpochTally* Accumulator::batch_tally(int64_t epoch) {
  for (auto& [known, t] : batch_tallies_)
    if (known == epoch) return &t;
  const auto stored = tallies_.find(epoch);
  batch_tallies_.emplace_back(epoch, stored == tallies_.end() ? EpochTally{} : stored->second);
  return &batch_tallies_.back().second;
}

// The epoch tallies of a scattered batch, in row order (after scatter_parallel).
void Accumulator::tally_rows(const int64_t* labels, int64_t rows, const AddOptions& options) {
  const double* margins = row_margins_.data();
  int64_t epoch = options.epochs ? options.epochs[0] : options.epoch;
  EpochTally* stored = batch_tally(epoch);
  EpochTally t = *stored;
  for (int64_t r = 0; r < rows; ++r) {
    const double margin = margins[r];
    if (margin != margin) continue;
    if (options.epochs && options.epochs[r] != epoch) {
      *stored = t;
      epoch = options.epochs[r];
      stored = batch_tally(epoch);
      t = *stored;
    }
    t.rows += 1;
    t.margin_sum += margin;
    const bool tallied = labels[r] == options.tally_label;
    t.tallied_rows += tallied;
    t.tallied_fitted += tallied & (margin > 0.0);
    t.tallied_margin_sum += tallied ? margin : 0.0;
  }
  *stored = t;
}

// Undo the sums of rows [0, rows_done), last row first, so each sum gets its value from before
// the batch back exactly.
void Accumulator::undo_scatter(const int64_t* refs, int64_t rows_done) {
  for (int64_t r = rows_done - 1; r >= 0; --r) {
    if (row_margins_[static_cast<size_t>(r)] != row_margins_[static_cast<size_t>(r)]) continue;
    Slot* slot = table_.at(refs[r]);
    slot->sum = sum_undo_[static_cast<size_t>(r)];
    slot->count -= 1;
  }
}

// Where the new samples of a batch of `rows` rows go (see fresh_in_order_), with room for all.
void Accumulator::start_new_samples(size_t rows) {
  new_samples_.clear();
  fresh_in_order_ = order_.capacity() - order_.size() >= rows;
  fresh_from_ = fresh_in_order_ ? order_.size() : 0;
  if (!fresh_in_order_) make_room(new_samples_, rows);
}

// The batch's new samples join the others, if they are not there yet (the one allocation
// that may fail); the list is kept for set_new_sources, or for roll_back if this fails.
void Accumulator::join_new_samples() {
  if (!fresh_in_order_) order_.insert(order_.end(), new_samples_.begin(), new_samples_.end());
}

void Accumulator::end_new_samples() {
  new_samples_.clear();
  fresh_in_order_ = false;
  fresh_from_ = 0;
}

// The label source of the samples a batch created, recorded once the batch is in (after
// prepare_source): usually one value for all, set once; else a write per new sample, its slot
// found again here (rare: a later file bringing new samples), so that rows need not keep it.
void Accumulator::set_new_sources(int32_t source) {
  if (new_count() == 0) return;
  if (!table_.sources_per_slot()) {
    table_.set_source(table_.find(new_keys()[0]), source);
    return;
  }
  for (size_t i = 0; i < new_count(); ++i) table_.set_source(table_.find(new_keys()[i]), source);
}

// Who set the label of `slot`: the batch being added if it created the sample, else the
// recorded source (an error path: the search is linear).
int32_t Accumulator::label_source(const Slot* slot, int32_t batch_source) {
  for (size_t i = 0; i < new_count(); ++i)
    if (table_.find(new_keys()[i]) == slot) return batch_source;
  return table_.source(slot);
}

void Accumulator::roll_back() {
  for (auto it = label_undo_.rbegin(); it != label_undo_.rend(); ++it) {
    Slot* slot = table_.at(it->ref);
    slot->label = it->label;
    table_.set_source(slot, it->source);
  }
  label_undo_.clear();
  for (size_t i = 0; i < new_count(); ++i) table_.deactivate(new_keys()[i]);
  fresh().resize(fresh_from_);  // (order_ back to its samples before the batch)
  end_new_samples();
}

// All-or-nothing: every pass that changes the state either completes or is undone.
//  - Every row labelled (the usual case): margins first (parallel; they also catch labels
//    outside [0, classes)), then one pass that checks labels against the samples' and adds
//    margins. If a row is NaN/inf and that is an error, a validate pass first reports any
//    label error (it comes first, as rows are checked in order), then the NaN row.
//  - Some rows without a label: validate (learning those rows' labels), margins again, scatter.
AddStats Accumulator::add(const LogitBlock& block, const int64_t* labels, const int64_t* keys,
                          const AddOptions& options) {
  if (block.classes != classes_)
    throw std::invalid_argument("logits have " + std::to_string(block.classes) +
                                " classes, the state has " + std::to_string(classes_));
  if (block.rows > 0 && (block.row_stride < block.classes || block.data == nullptr))
    throw std::invalid_argument("logits block has a bad stride or no data");
  return add_rows(block.rows, labels, keys, options, [&](const int64_t* row_labels, double* out) {
    return compute_margins(block, row_labels, out, options.threads);
  });
}

AddStats Accumulator::add_margins(const double* margins, int64_t rows, const int64_t* labels,
                                  const int64_t* keys, const AddOptions& options) {
  // Margins computed elsewhere (a compact log): a non-finite one marks its row as the kernel
  // marks a row holding NaN/inf, and as it marks a row whose label is missing or outside.
  return add_rows(rows, labels, keys, options, [&](const int64_t* row_labels, double* out) {
    int64_t nonfinite = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const bool ok = std::isfinite(margins[r]) &&
                      static_cast<uint64_t>(row_labels[r]) < static_cast<uint64_t>(classes_);
      out[r] = ok ? margins[r] : std::numeric_limits<double>::quiet_NaN();
      nonfinite += ok ? 0 : 1;
    }
    return nonfinite;
  });
}

template <typename FillMargins>
AddStats Accumulator::add_rows(int64_t rows, const int64_t* labels, const int64_t* keys,
                               const AddOptions& options, FillMargins fill_margins) {
  if (rows <= 0) return AddStats{};
  const size_t n = static_cast<size_t>(rows);
  start_new_samples(n);
  row_margins_.resize(n);
  sum_undo_.resize(n);
  label_undo_.clear();
  batch_tallies_.clear();
  AddStats stats;
  try {
    const int64_t* refs = table_.refs_for(keys, rows, row_refs_, options.threads);
    // A missing label or one outside [0, classes) gives its row a NaN margin, so the labels
    // are only scanned for a batch with NaN margins (a pass fewer for the others). Margins
    // right before the scatter: it reads them from cache.
    int64_t nonfinite = fill_margins(labels, row_margins_.data());
    int64_t unlabeled = 0;
    if (nonfinite > 0) {
      const int64_t bad = first_bad_label(labels, rows, classes_, unlabeled, options.threads);
      if (bad >= 0) throw RowError(outside(labels[bad], classes_), bad);
    }
    const int64_t* row_labels = labels;
    if (unlabeled > 0) {  // learn those rows' labels, then their margins
      row_labels_.resize(n);
      run_pass<Pass::validate>(labels, keys, refs, rows, options, row_labels_.data(), nullptr);
      row_labels = row_labels_.data();
      nonfinite = fill_margins(row_labels, row_margins_.data());
    }
    if (nonfinite > 0 && !options.skip_nonfinite) {
      if (unlabeled == 0)
        run_pass<Pass::validate>(labels, keys, refs, rows, options, nullptr, nullptr);
      throw RowError("logits are NaN or infinite", first_nan(row_margins_));
    }
    run_pass<Pass::scatter>(row_labels, keys, refs, rows, options, nullptr, &stats);
    last_batch_rows_ = rows;
    last_batch_new_samples_ = static_cast<int64_t>(new_count());
    if (new_count() > 0) table_.prepare_source(options.source);
    join_new_samples();
    set_new_sources(options.source);
  } catch (...) {
    roll_back();
    throw;
  }
  end_new_samples();
  label_undo_.clear();
  for (const auto& [epoch, tally] : batch_tallies_) tallies_[epoch] = tally;
  stats.added = rows - stats.skipped;
  rows_added_ += stats.added;
  rows_skipped_ += stats.skipped;
  return stats;
}

void Accumulator::set_labels(const int64_t* keys, const int64_t* labels, int64_t n,
                             int32_t source) {
  for (int64_t r = 0; r < n; ++r)
    if (labels[r] < 0 || labels[r] >= classes_) throw RowError(outside(labels[r], classes_), r);
  start_new_samples(static_cast<size_t>(n));
  label_undo_.clear();
  if (n > 0) table_.prepare_source(source);
  try {
    const int64_t* refs = table_.refs_for(keys, n, row_refs_);
    for (int64_t r = 0; r < n; ++r) {
      if (r + kAhead < n) table_.prefetch_ref(refs[r + kAhead]);
      Slot* slot = table_.at(refs[r]);
      if (table_.activate(slot)) fresh().push_back(keys[r]);
      if (slot->label != kNoLabel32 && slot->label != labels[r])
        throw RowError(label_conflict(describe_key(keys[r]), labels[r], slot->label), r,
                       table_.source(slot));
      label_undo_.push_back({refs[r], slot->label, table_.source(slot)});
      slot->label = static_cast<int32_t>(labels[r]);
      table_.set_source(slot, source);
    }
    join_new_samples();
  } catch (...) {
    roll_back();
    throw;
  }
  end_new_samples();
  label_undo_.clear();
}

void Accumulator::merge(const Accumulator& other, bool allow_label_changes) {
  if (other.classes_ != classes_ || other.id_kind_ != id_kind_)
    throw std::invalid_argument("cannot merge states with different classes or id kinds");
  if (&other == this) throw std::invalid_argument("cannot merge a state into itself");
  // Their keys in our terms (string ids are interned here too).
  std::vector<int64_t> mine(other.order_.size());
  for (size_t i = 0; i < mine.size(); ++i)
    mine[i] = id_kind_ == IdKind::string ? strings_.intern_one(other.strings_.at(other.order_[i]))
                                         : other.order_[i];
  // Check labels and counts first so a conflict leaves this state untouched.
  for (size_t i = 0; i < mine.size(); ++i) {
    const Slot* a = table_.find(mine[i]);
    const Slot* b = other.table_.find(other.order_[i]);
    if (!allow_label_changes && a && a->label != kNoLabel32 && b->label != kNoLabel32 &&
        a->label != b->label)
      throw std::invalid_argument(label_conflict(describe_key(mine[i]), b->label, a->label) +
                                  " (merging states)");
    if (a && int64_t{a->count} + b->count > kMaxCount)
      throw std::invalid_argument(too_many(describe_key(mine[i])) + " (merging states)");
  }
  make_room(order_, mine.size());
  if (!mine.empty()) table_.prepare_source(kStateSource);
  for (size_t i = 0; i < mine.size(); ++i) {
    const Slot theirs = *other.table_.find(other.order_[i]);
    Slot* slot = slot_for(mine[i]);
    if (theirs.label != kNoLabel32 && (slot->label == kNoLabel32 || allow_label_changes)) {
      slot->label = theirs.label;
      table_.set_source(slot, kStateSource);
    }
    slot->sum += theirs.sum;
    slot->count += theirs.count;
  }
  for (const auto& [epoch, theirs] : other.tallies_) {
    EpochTally& t = tallies_[epoch];
    t.rows += theirs.rows;
    t.margin_sum += theirs.margin_sum;
    t.tallied_rows += theirs.tallied_rows;
    t.tallied_fitted += theirs.tallied_fitted;
    t.tallied_margin_sum += theirs.tallied_margin_sum;
  }
  rows_added_ += other.rows_added_;
  rows_skipped_ += other.rows_skipped_;
}

}  // namespace aum
