// Every differentiable function of okd in one include: elementwise math and operators,
// reductions, matmul, views and copies, joining and indexing (detach and backward are in tape.h).
#pragma once
#include "autograd/functions/elementwise.h"
#include "autograd/functions/index.h"
#include "autograd/functions/matmul.h"
#include "autograd/functions/nn.h"
#include "autograd/functions/reduce.h"
#include "autograd/functions/view.h"
#include "autograd/tape.h"
