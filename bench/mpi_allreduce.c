// Time the ways two MPI ranks can sum G2P's 18 MB of float gradients (docs/BENCHMARKS.md, "Data-parallel
// scaling on the spam config"): non-blocking and blocking all-reduce, reduce-scatter + all-gather, and the
// same in bfloat16 through a user-defined reduction. Build and run:
//   mpicc -O3 -march=native bench/mpi_allreduce.c -o /tmp/mpi_allreduce &&
//   mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 /tmp/mpi_allreduce
#include <mpi.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kFloats = 4490000, kRepeats = 6 };

// Polls like recur's communicator does (MPI_Testall, yielding between polls).
static void wait_all(int n, MPI_Request* reqs) {
  int done = 0;
  while (!done) {
    MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
    if (!done) sched_yield();
  }
}

static float bf16_to_float(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint16_t float_to_bf16(float f) {  // round to nearest even
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static void bf16_sum(void* in, void* inout, int* len, MPI_Datatype* type) {
  (void)type;
  const uint16_t* a = in;
  uint16_t* b = inout;
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int half = kFloats / size;
  float* grads = malloc(sizeof(float) * kFloats);
  float* part = malloc(sizeof(float) * kFloats);
  uint16_t* packed = malloc(sizeof(uint16_t) * kFloats);
  uint16_t* packed_part = malloc(sizeof(uint16_t) * kFloats);
  MPI_Op bf16_op;
  MPI_Op_create(bf16_sum, 1, &bf16_op);
  for (int r = 0; r < kRepeats; ++r) {
    for (int i = 0; i < kFloats; ++i) grads[i] = 1.0f;
    MPI_Request req;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    MPI_Iallreduce(MPI_IN_PLACE, grads, kFloats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    wait_all(1, &req);
    const double t1 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, grads, kFloats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const double t2 = MPI_Wtime();
    MPI_Reduce_scatter_block(grads, part, half, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allgather(part, half, MPI_FLOAT, grads, half, MPI_FLOAT, MPI_COMM_WORLD);
    const double t3 = MPI_Wtime();
    MPI_Ireduce_scatter_block(grads, part, half, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    wait_all(1, &req);
    MPI_Iallgather(part, half, MPI_FLOAT, grads, half, MPI_FLOAT, MPI_COMM_WORLD, &req);
    wait_all(1, &req);
    const double t4 = MPI_Wtime();
    for (int i = 0; i < kFloats; ++i) packed[i] = float_to_bf16(grads[i]);
    MPI_Iallreduce(MPI_IN_PLACE, packed, kFloats, MPI_UINT16_T, bf16_op, MPI_COMM_WORLD, &req);
    wait_all(1, &req);
    for (int i = 0; i < kFloats; ++i) grads[i] = bf16_to_float(packed[i]);
    const double t5 = MPI_Wtime();
    for (int i = 0; i < kFloats; ++i) packed[i] = float_to_bf16(grads[i]);
    MPI_Ireduce_scatter_block(packed, packed_part, half, MPI_UINT16_T, bf16_op, MPI_COMM_WORLD, &req);
    wait_all(1, &req);
    MPI_Iallgather(packed_part, half, MPI_UINT16_T, packed, half, MPI_UINT16_T, MPI_COMM_WORLD, &req);
    wait_all(1, &req);
    for (int i = 0; i < kFloats; ++i) grads[i] = bf16_to_float(packed[i]);
    const double t6 = MPI_Wtime();
    if (rank == 0)
      printf("ms: iallreduce %.2f  allreduce %.2f  reduce_scatter+allgather %.2f  ireduce_scatter+iallgather %.2f  "
             "bf16 iallreduce %.2f  bf16 ireduce_scatter+iallgather %.2f\n",
             (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3, (t5 - t4) * 1e3, (t6 - t5) * 1e3);
  }
  MPI_Op_free(&bf16_op);
  free(grads);
  free(part);
  free(packed);
  free(packed_part);
  MPI_Finalize();
  return 0;
}
