// The MPI communicator (built when CMake finds MPI; mpi_stub.cc otherwise).
//
// Every wait for peers is a non-blocking MPI call (MPI_Ibarrier, MPI_Ibcast, ...) completed by
// polling in detail::wait_for (all-reduce moves its data with a blocking call once a barrier has
// shown that every rank is there), so that a wait can (1) answer peers asking what this rank is doing,
// (2) notice that a peer process on this machine has exited, and (3) give up after the timeout
// with a message naming the ranks that did not arrive. MPI errors are returned (MPI_ERRORS_RETURN)
// and turned into recur::Error; after any fault the process ends the job with MPI_Abort at exit
// instead of MPI_Finalize, which would wait for peers that will never come.
#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <thread>

#include "internal.h"
#include "recur/core/error.h"

namespace recur::dist {
namespace {

// What recur owns of MPI's per-process state: whether it initialised MPI, and whether the process
// must end the job (MPI_Abort) rather than finalize when it exits.
struct ProcessState {
  bool initialised_here = false;
  bool abort_at_exit = false;
};
ProcessState& process_state() {
  static ProcessState s;
  return s;
}

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return fmt::format("MPI error code {}", code);
  return std::string(buf, static_cast<size_t>(len));
}

int world_rank_or_minus_one() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  int r = -1;
  if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

[[noreturn]] void fail_mpi(int rc, const char* file, int line, const char* expr) {
  process_state().abort_at_exit = true;  // MPI is in an undefined state: never finalize
  ::recur::detail::fail(file, line,
                        fmt::format("MPI error on rank {} in {}: {}", world_rank_or_minus_one(), expr, mpi_error_string(rc)));
}

/// Throws recur::Error with file:line, the call and MPI's own message when an MPI call fails.
#define RECUR_MPI_CHECK(expr)                                             \
  do {                                                                    \
    const int recur_mpi_rc_ = (expr);                                     \
    if (recur_mpi_rc_ != MPI_SUCCESS) fail_mpi(recur_mpi_rc_, __FILE__, __LINE__, #expr); \
  } while (0)

void finalize_at_exit() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin) return;
  if (process_state().abort_at_exit) {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);  // ends the peers too (mpirun kills the job)
  }
  MPI_Finalize();
}

void ensure_mpi() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  RECUR_CHECK(!fin, "MPI was already finalized in this process; create communicators before exit");
  if (init) return;  // an embedding program initialised MPI; it finalizes it too
  int provided = 0;
  // SERIALIZED: any one thread at a time may call recur's collectives (the training thread).
  RECUR_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
  process_state().initialised_here = true;
  std::atexit(finalize_at_exit);
  RECUR_CHECK(provided >= MPI_THREAD_SERIALIZED, "MPI provides thread level {}, recur needs MPI_THREAD_SERIALIZED ({})",
              provided, static_cast<int>(MPI_THREAD_SERIALIZED));
}

MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
  }
  RECUR_FAIL("mpi: unsupported dtype");
}

// Who a process is, exchanged once: peers on the same kernel (same boot id and PID namespace) can
// be checked for liveness by pid.
struct Identity {
  char host[128] = {};
  char kernel[128] = {};
  int64_t pid = 0;
};

std::string read_first_line(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

Identity self_identity() {
  Identity id;
  gethostname(id.host, sizeof id.host - 1);
  char ns[64] = {};
  const ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
  const std::string pid_ns = n > 0 ? std::string(ns, static_cast<size_t>(n)) : std::string();
  const std::string kernel = read_first_line("/proc/sys/kernel/random/boot_id") + "/" + pid_ns;
  std::strncpy(id.kernel, kernel.c_str(), sizeof id.kernel - 1);
  id.pid = static_cast<int64_t>(getpid());
  return id;
}

// False once the process is gone (or a zombie nobody has reaped yet).
bool process_alive(int64_t pid) {
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return true;  // no /proc: trust kill()
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

constexpr int kTagPing = 1;
constexpr int kTagPong = 2;
constexpr int64_t kMaxCount = int64_t{1} << 30;  // MPI counts are int: larger tensors go in chunks

class MpiCommunicator;

class MpiWork final : public Work {
 public:
  MpiWork(MpiCommunicator* comm, detail::OpState op, Tensor buffer, Tensor target)
      : comm_(comm), op_(op), buffer_(std::move(buffer)), target_(std::move(target)) {}
  ~MpiWork() override;
  void wait() override;
  bool test() override;
  std::vector<MPI_Request> requests;

 private:
  void finish();
  MpiCommunicator* comm_;
  detail::OpState op_;
  Tensor buffer_;  // what MPI reads and writes (kept alive until completion)
  Tensor target_;  // the caller's GPU tensor the host buffer is copied back into, or undefined
  bool done_ = false;
};

class MpiCommunicator final : public Communicator, public detail::PeerMonitor {
 public:
  explicit MpiCommunicator(const CommOptions& options);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string name() const override { return "mpi"; }
  Device device() const override { return Device::cpu(); }
  const CommOptions& options() const override { return options_; }

  std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op, double scale) override;
  void broadcast(Tensor& t, int root) override;
  std::vector<double> all_gather(const std::vector<double>& values) override;
  std::vector<int64_t> all_gather(const std::vector<int64_t>& values) override;
  using Communicator::all_gather;
  void barrier() override;
  [[noreturn]] void abort(int code) override;

  void set_waiting(const detail::OpState& op) override { waiting_ = op; }
  void service() override;
  void check_peers(const detail::OpState& op) override;
  [[noreturn]] void fail_timeout(const detail::OpState& op, double waited_s) override;

  void wait_requests(std::vector<MPI_Request>& reqs, const detail::OpState& op);
  void abandon(std::vector<MPI_Request> reqs, Tensor buffer, const detail::OpState& op);

 private:
  struct Outgoing {
    std::array<int64_t, 2> buf{};
    MPI_Request req = MPI_REQUEST_NULL;
  };
  void ensure_usable() const;
  detail::OpState next_op(detail::OpKind kind, int64_t bytes) { return detail::OpState{kind, ++seq_, bytes}; }
  std::string who() const;
  std::string who(int r) const;
  [[noreturn]] void fail_fault(const std::string& message);
  void post_ping_receive();
  template <class T>
  std::vector<T> gather(const std::vector<T>& values, MPI_Datatype type);

  CommOptions options_;
  int uncaught_at_start_;
  MPI_Comm comm_ = MPI_COMM_NULL;  // collectives
  MPI_Comm ctrl_ = MPI_COMM_NULL;  // fault-detection questions and answers, never mixed with the above
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::vector<Identity> peers_;
  std::vector<bool> same_kernel_;
  int64_t seq_ = 0;
  detail::OpState waiting_;
  std::string broken_;  // after a fault: every later call fails with this
  std::array<int64_t, 2> ping_in_{};
  MPI_Request ping_req_ = MPI_REQUEST_NULL;
  std::deque<Outgoing> pongs_;
  struct Abandoned {
    std::vector<MPI_Request> reqs;
    Tensor buffer;
  };
  std::vector<Abandoned> abandoned_;
};

MpiWork::~MpiWork() {
  if (!done_) comm_->abandon(std::move(requests), buffer_, op_);
}

void MpiWork::wait() {
  if (done_) return;
  comm_->wait_requests(requests, op_);
  finish();
}

bool MpiWork::test() {
  if (done_) return true;
  int flag = 0;
  RECUR_MPI_CHECK(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &flag, MPI_STATUSES_IGNORE));
  if (flag) finish();
  return done_;
}

void MpiWork::finish() {
  done_ = true;
  if (target_.defined()) target_.copy_from(buffer_);
}

MpiCommunicator::MpiCommunicator(const CommOptions& options)
    : options_(options), uncaught_at_start_(std::uncaught_exceptions()) {
  ensure_mpi();
  RECUR_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  RECUR_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  RECUR_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  // Two private communicators: collectives never match a user's MPI_COMM_WORLD traffic, and the
  // fault-detection messages never match a collective.
  for (MPI_Comm* c : {&comm_, &ctrl_}) {
    std::vector<MPI_Request> req(1);
    RECUR_MPI_CHECK(MPI_Comm_idup(MPI_COMM_WORLD, c, req.data()));
    wait_requests(req, detail::OpState{detail::OpKind::Setup, 0, 0});
    RECUR_MPI_CHECK(MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN));
  }
  post_ping_receive();
  const Identity me = self_identity();
  peers_.resize(static_cast<size_t>(size_));
  std::vector<MPI_Request> req(1);
  RECUR_MPI_CHECK(MPI_Iallgather(&me, sizeof(Identity), MPI_BYTE, peers_.data(), sizeof(Identity), MPI_BYTE, comm_,
                                 req.data()));
  wait_requests(req, detail::OpState{detail::OpKind::Setup, 0, static_cast<int64_t>(sizeof(Identity))});
  same_kernel_.resize(static_cast<size_t>(size_));
  local_rank_ = 0;
  local_size_ = 0;
  for (int r = 0; r < size_; ++r) {
    const Identity& p = peers_[static_cast<size_t>(r)];
    const bool same_host = std::strncmp(p.host, me.host, sizeof me.host) == 0;
    same_kernel_[static_cast<size_t>(r)] = same_host && std::strncmp(p.kernel, me.kernel, sizeof me.kernel) == 0;
    if (same_host) {
      local_rank_ += r < rank_;
      ++local_size_;
    }
  }
}

MpiCommunicator::~MpiCommunicator() {
  // Destroyed while an exception propagates (an error on this rank) or after a fault: peers may
  // be waiting for collectives this rank will never join, so end the job at exit.
  if (std::uncaught_exceptions() > uncaught_at_start_ || !broken_.empty()) process_state().abort_at_exit = true;
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin || process_state().abort_at_exit) return;  // MPI_Abort at exit cleans up
  if (ping_req_ != MPI_REQUEST_NULL) {
    MPI_Cancel(&ping_req_);
    MPI_Wait(&ping_req_, MPI_STATUS_IGNORE);
  }
  for (Outgoing& o : pongs_) MPI_Wait(&o.req, MPI_STATUS_IGNORE);
  MPI_Comm_free(&ctrl_);
  MPI_Comm_free(&comm_);
}

std::string MpiCommunicator::who() const {
  const Identity& me = peers_.empty() ? Identity{} : peers_[static_cast<size_t>(rank_)];
  return fmt::format("rank {} of {} (pid {} on {})", rank_, size_, static_cast<long long>(getpid()), me.host);
}

std::string MpiCommunicator::who(int r) const {
  const Identity& p = peers_[static_cast<size_t>(r)];
  return fmt::format("rank {} (pid {} on {})", r, static_cast<long long>(p.pid), p.host);
}

void MpiCommunicator::ensure_usable() const {
  RECUR_CHECK(broken_.empty(), "{}: the communicator is unusable after an earlier failure: {}", who(), broken_);
}

void MpiCommunicator::fail_fault(const std::string& message) {
  broken_ = message;
  process_state().abort_at_exit = true;
  RECUR_FAIL("{}", message);
}

void MpiCommunicator::post_ping_receive() {
  RECUR_MPI_CHECK(MPI_Irecv(ping_in_.data(), 2, MPI_INT64_T, MPI_ANY_SOURCE, kTagPing, ctrl_, &ping_req_));
}

void MpiCommunicator::service() {
  while (!pongs_.empty()) {  // reap answers already delivered
    int flag = 0;
    RECUR_MPI_CHECK(MPI_Test(&pongs_.front().req, &flag, MPI_STATUS_IGNORE));
    if (!flag) break;
    pongs_.pop_front();
  }
  for (;;) {
    int flag = 0;
    MPI_Status st;
    RECUR_MPI_CHECK(MPI_Test(&ping_req_, &flag, &st));
    if (!flag) return;
    Outgoing& o = pongs_.emplace_back();
    o.buf = {static_cast<int64_t>(waiting_.kind), waiting_.seq};
    RECUR_MPI_CHECK(MPI_Isend(o.buf.data(), 2, MPI_INT64_T, st.MPI_SOURCE, kTagPong, ctrl_, &o.req));
    post_ping_receive();
  }
}

void MpiCommunicator::check_peers(const detail::OpState& op) {
  for (int r = 0; r < size_ && static_cast<size_t>(r) < same_kernel_.size(); ++r) {
    if (r == rank_ || !same_kernel_[static_cast<size_t>(r)]) continue;
    if (!process_alive(peers_[static_cast<size_t>(r)].pid))
      fail_fault(fmt::format("{}: {} has exited while this rank waited in {}; ending the job", who(), who(r),
                             detail::describe(op)));
  }
}

void MpiCommunicator::fail_timeout(const detail::OpState& op, double waited_s) {
  // Ask every peer what it is doing; live ones answer from their own wait loops.
  const std::array<int64_t, 2> question{static_cast<int64_t>(op.kind), op.seq};
  std::vector<std::array<int64_t, 2>> answers(static_cast<size_t>(size_));
  std::vector<MPI_Request> recv(static_cast<size_t>(size_), MPI_REQUEST_NULL), send(recv);
  std::vector<std::string> unreachable(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    const size_t i = static_cast<size_t>(r);
    int rc = MPI_Irecv(answers[i].data(), 2, MPI_INT64_T, r, kTagPong, ctrl_, &recv[i]);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(question.data(), 2, MPI_INT64_T, r, kTagPing, ctrl_, &send[i]);
    if (rc != MPI_SUCCESS) unreachable[i] = mpi_error_string(rc);
  }
  const double grace = std::clamp(options_.timeout_s / 4, 0.5, 5.0);
  const auto start = std::chrono::steady_clock::now();
  std::vector<bool> answered(static_cast<size_t>(size_), false);
  for (;;) {
    bool all = true;
    for (int r = 0; r < size_; ++r) {
      const size_t i = static_cast<size_t>(r);
      if (r == rank_ || answered[i] || !unreachable[i].empty()) continue;
      int flag = 0;
      const int rc = MPI_Test(&recv[i], &flag, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) unreachable[i] = mpi_error_string(rc);
      else if (flag) answered[i] = true;
      else all = false;
    }
    try {
      service();
    } catch (const Error&) {  // the report below matters more than a failed answer
    }
    if (all || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > grace) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::vector<std::string> gone, silent, elsewhere, same;
  for (int r = 0; r < size_; ++r) {
    const size_t i = static_cast<size_t>(r);
    if (r == rank_) continue;
    if (same_kernel_[i] && !process_alive(peers_[i].pid)) gone.push_back(who(r) + " has exited");
    else if (!unreachable[i].empty()) gone.push_back(fmt::format("{} is unreachable ({})", who(r), unreachable[i]));
    else if (!answered[i]) silent.push_back(std::to_string(r));
    else if (answers[i][0] == question[0] && answers[i][1] == question[1]) same.push_back(std::to_string(r));
    else {
      const detail::OpState theirs{static_cast<detail::OpKind>(answers[i][0]), answers[i][1], 0};
      elsewhere.push_back(fmt::format("rank {} is in {} #{}", r, detail::op_name(theirs.kind), theirs.seq));
    }
  }
  std::string msg = fmt::format("{}: {} did not complete within {:.0f} s (timeout {} s).", who(), detail::describe(op),
                                waited_s, options_.timeout_s);
  for (const std::string& g : gone) msg += " " + g + ".";
  if (!silent.empty())
    msg += fmt::format(" rank{} {} did not answer within {:.1f} s (dead, hung, or busy outside collectives, e.g. "
                       "evaluating alone).",
                       silent.size() > 1 ? "s" : "", fmt::join(silent, ", "), grace);
  if (!elsewhere.empty())
    msg += fmt::format(" {} (the ranks called collectives in different orders).", fmt::join(elsewhere, "; "));
  if (!same.empty())
    msg += fmt::format(" rank{} {} {} waiting in the same collective.", same.size() > 1 ? "s" : "",
                       fmt::join(same, ", "), same.size() > 1 ? "are" : "is");
  msg += " Ending the job; raise the communication timeout if a rank legitimately needs longer.";
  fail_fault(msg);
}

void MpiCommunicator::wait_requests(std::vector<MPI_Request>& reqs, const detail::OpState& op) {
  detail::PeerMonitor* monitor = ping_req_ == MPI_REQUEST_NULL ? nullptr : this;  // none during setup
  try {
    detail::wait_for(
        [&] {
          int flag = 0;
          RECUR_MPI_CHECK(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &flag, MPI_STATUSES_IGNORE));
          return flag != 0;
        },
        op, options_.timeout_s, monitor);
  } catch (const Error&) {
    if (broken_.empty()) broken_ = fmt::format("{} failed", detail::describe(op));
    process_state().abort_at_exit = true;
    throw;
  }
}

void MpiCommunicator::abandon(std::vector<MPI_Request> reqs, Tensor buffer, const detail::OpState& op) {
  if (broken_.empty()) broken_ = fmt::format("{} was started but never waited for", detail::describe(op));
  abandoned_.push_back({std::move(reqs), std::move(buffer)});  // MPI may still write into it
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_async(Tensor& t, ReduceOp op, double scale) {
  ensure_usable();
  RECUR_CHECK(t.defined(), "all_reduce: undefined tensor");
  const bool is_float = t.dtype() == DType::F32 || t.dtype() == DType::F64;
  RECUR_CHECK(is_float || (op == ReduceOp::Sum && scale == 1.0),
              "all_reduce: {} tensors support only Sum with scale 1", dtype_name(t.dtype()));
  // GPU tensors are staged through the host (NCCL is the fast path for them).
  Tensor buffer = t.device().is_cpu() ? t : t.cpu();
  detail::scale_tensor(buffer, scale * (op == ReduceOp::Avg ? 1.0 / size_ : 1.0));
  const detail::OpState state = next_op(detail::OpKind::AllReduce, static_cast<int64_t>(t.nbytes()));
  auto work = std::make_unique<MpiWork>(this, state, buffer, t.device().is_cpu() ? Tensor() : t);
  // Gated blocking all-reduce. OpenMPI's non-blocking MPI_Iallreduce (libnbc) took 12-15 ms for
  // 18 MB between two ranks on one machine, its tuned blocking MPI_Allreduce 3.5-5 ms
  // (bench/mpi_allreduce.c, docs/BENCHMARKS.md). A blocking call cannot time out or notice a dead
  // peer, so every rank first waits in a non-blocking barrier under the usual timeout and peer
  // checks; once it completes, every rank has reached this all-reduce and the blocking calls only
  // move data. The work is complete on return (wait() copies a GPU tensor back).
  std::vector<MPI_Request> gate(1);
  RECUR_MPI_CHECK(MPI_Ibarrier(comm_, gate.data()));
  wait_requests(gate, state);
  const size_t esize = dtype_size(t.dtype());
  for (int64_t off = 0; off < buffer.numel(); off += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, buffer.numel() - off));
    const int rc = MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(buffer.raw()) + off * static_cast<int64_t>(esize),
                                 count, mpi_type(t.dtype()), MPI_SUM, comm_);
    if (rc != MPI_SUCCESS) {
      broken_ = fmt::format("{} failed", detail::describe(state));
      fail_mpi(rc, __FILE__, __LINE__, "MPI_Allreduce");
    }
  }
  return work;
}

void MpiCommunicator::broadcast(Tensor& t, int root) {
  ensure_usable();
  RECUR_CHECK(t.defined(), "broadcast: undefined tensor");
  RECUR_CHECK(root >= 0 && root < size_, "broadcast: root {} is not a rank of {}", root, size_);
  Tensor buffer = t.device().is_cpu() ? t : t.cpu();
  MpiWork work(this, next_op(detail::OpKind::Broadcast, static_cast<int64_t>(t.nbytes())), buffer,
               t.device().is_cpu() ? Tensor() : t);
  const size_t esize = dtype_size(t.dtype());
  for (int64_t off = 0; off < buffer.numel(); off += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, buffer.numel() - off));
    MPI_Request req;
    RECUR_MPI_CHECK(MPI_Ibcast(static_cast<char*>(buffer.raw()) + off * static_cast<int64_t>(esize), count,
                               mpi_type(t.dtype()), root, comm_, &req));
    work.requests.push_back(req);
  }
  work.wait();
}

template <class T>
std::vector<T> MpiCommunicator::gather(const std::vector<T>& values, MPI_Datatype type) {
  ensure_usable();
  RECUR_CHECK(values.size() < static_cast<size_t>(kMaxCount), "all_gather: {} values", values.size());
  std::vector<T> out(values.size() * static_cast<size_t>(size_));
  std::vector<MPI_Request> req(1);
  const int k = static_cast<int>(values.size());
  RECUR_MPI_CHECK(MPI_Iallgather(values.data(), k, type, out.data(), k, type, comm_, req.data()));
  wait_requests(req, next_op(detail::OpKind::AllGather, static_cast<int64_t>(values.size() * sizeof(T))));
  return out;
}

std::vector<double> MpiCommunicator::all_gather(const std::vector<double>& values) { return gather(values, MPI_DOUBLE); }

std::vector<int64_t> MpiCommunicator::all_gather(const std::vector<int64_t>& values) {
  return gather(values, MPI_INT64_T);
}

void MpiCommunicator::barrier() {
  ensure_usable();
  std::vector<MPI_Request> req(1);
  RECUR_MPI_CHECK(MPI_Ibarrier(comm_, req.data()));
  wait_requests(req, next_op(detail::OpKind::Barrier, 0));
}

void MpiCommunicator::abort(int code) {
  process_state().abort_at_exit = true;
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace

bool mpi_compiled() { return true; }

namespace detail {
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(options);
}
}  // namespace detail

}  // namespace recur::dist
