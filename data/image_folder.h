// ImageFolder datasets: root/<class>/.../<image>, one folder per class, classes sorted by name
// and labelled 0, 1, ... in that order (torchvision's ImageFolder). Images (JPEG, PNG, BMP, found
// in any sub-folder of a class folder, as torchvision's os.walk does) are decoded to RGB with
// stb_image, resized once at load time and kept as one uint8 [N, 3, S, S] ImageDataset; files
// with other extensions are counted and reported, never decoded. Decoding runs in parallel.
#pragma once
#include <string>
#include <vector>

#include "data/datasets.h"

namespace okd::data {

struct ImageFolderOptions {
  // 0: keep the images' own size (they must all share it, e.g. TinyImageNet's 64x64). S > 0:
  // every image becomes S x S, by a bilinear (antialiased) resize of its shorter side to S and a
  // centre crop (shorter_side, torchvision's Resize(S) + CenterCrop(S)), or by resizing both
  // sides to S (aspect ratio not kept).
  int64_t image_size = 0;
  bool shorter_side = true;
  // When not empty, the labels come from this list (e.g. the training split's classes, for a
  // validation split): every class folder must be in it.
  std::vector<std::string> classes;
  int threads = 0;        // decoding threads; 0: the hardware's
  bool progress = true;   // a progress line on stderr for folders of 2000 images or more
  std::string name = "";  // dataset name; "" = imagefolder/<last path component>
};

// Throws naming the folder or file and the fault: missing root, no class folders, an empty class
// folder, an unknown class (with options.classes), an unreadable image, or (image_size 0) an image
// whose size differs from the first one's.
ImageDataset load_image_folder(const std::string& root, const ImageFolderOptions& options = {});

// The image files of a class folder (recursively, sorted by path) and how many other files it
// holds.
std::vector<std::string> list_images(const std::string& class_dir, int64_t* other_files = nullptr);

}  // namespace okd::data
