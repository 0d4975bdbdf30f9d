// train_cifar: the main job. Trains an image classifier with any method of the registry
// (--list-methods) on CIFAR-10/100, Fashion-MNIST/MNIST or an ImageFolder tree. See --help.
#include "apps/lib/trainer.h"

int main(int argc, char** argv) { return okd::apps::run_train_cifar(argc, argv); }
