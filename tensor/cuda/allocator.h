// The CUDA caching allocator and the host<->device copy hook (internal to the backend).
//   Device memory: size-binned free lists. A freed block goes back to the free list of its size
//   class and the next request of that class reuses it, so a training step that repeats the same
//   shapes calls cudaMalloc only while warming up and never calls cudaFree. Every kernel and copy
//   runs on okd's single stream, so a block reused on the host side is only touched by work queued
//   after everything that used it before (stream order is the only synchronisation needed).
//   Transfers: host data is staged through two pinned buffers, so a host->device copy returns as
//   soon as the last chunk is staged, and device->host copies overlap the two chunks.
#pragma once
#include <cstddef>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/storage.h"

namespace okd::cuda {

// Size class of a request: allocation_size_class (tensor/storage.h), shared with the CPU cache.
inline size_t size_class(size_t nbytes) { return allocation_size_class(nbytes); }

// The process-wide caching allocator of cuda:0 (never destroyed: tensors in static storage may
// outlive every other object at exit).
Allocator* caching_allocator();

// Private pools for CUDA graphs (graph_cuda.cpp). While a pool is open (between begin and end),
// every allocation comes from it: its own free blocks, else cudaMalloc. A pool block that is freed
// goes back to the pool, never to the shared free lists, for as long as the pool lives, because a
// graph replays its reads and writes of that memory whenever it is launched; release_graph_pool
// (when the graph is destroyed) hands the pool's free blocks, and its live ones once freed, back.
int begin_graph_pool();
void end_graph_pool();
void release_graph_pool(int pool);

// ops::to's device-copy hook: dst and src contiguous, same shape and dtype, one on cuda:0.
void device_copy(const Tensor& dst, const Tensor& src);

}  // namespace okd::cuda
