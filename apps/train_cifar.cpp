// train_cifar: the main job. Trains an image classifier with any method of the registry
// (--list-methods) on CIFAR-10/100, Fashion-MNIST/MNIST or an ImageFolder tree. See --help.
#include "apps/lib/trainer.h"
#include "tensor/runtime.h"

int main(int argc, char** argv) {
  okd::select_fast_blas_kernel(argv);  // may restart with OPENBLAS_CORETYPE set
  return okd::apps::run_train_cifar(argc, argv);
}
