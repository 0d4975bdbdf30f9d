// ImageFolder datasets: root/<class>/.../<image>, one folder per class, classes sorted by name
// and labelled 0, 1, ... in that order (torchvision's ImageFolder). Images (JPEG, PNG, BMP, found
// in any sub-folder of a class folder, as torchvision's os.walk does) are decoded to RGB with
// stb_image, resized once at load time and kept as one uint8 [N, 3, S, S] ImageDataset; files
// with other extensions are counted and reported, never decoded. Decoding runs in parallel.
// TinyImageNet's validation folder and CUB-200-2011, as distributed, have their own readers.
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

// Decodes files into one dataset (labels[i] is the label of files[i]) exactly as
// load_image_folder does; where names the source in progress lines and errors.
ImageDataset load_image_list(const std::vector<std::string>& files,
                             const std::vector<int64_t>& labels,
                             const std::vector<std::string>& class_names,
                             const ImageFolderOptions& options, const std::string& where);

// TinyImageNet's validation folder as distributed: val/images/<file> with
// val/val_annotations.txt lines "<file> <class id> <box>"; options.classes must hold the training
// split's class ids (the folder names of train/), which give the labels.
ImageDataset load_tinyimagenet_val(const std::string& val_dir, const ImageFolderOptions& options);

// CUB-200-2011 as distributed: dir/images/<class>/<file>, dir/images.txt ("<id> <class>/<file>")
// and dir/train_test_split.txt ("<id> <1 train | 0 test>"); classes are the folders of images/
// sorted by name ("001.Black_footed_Albatross", ...), so the labels are the official ones - 1.
ImageDataset load_cub200(const std::string& dir, bool train, const ImageFolderOptions& options);

// The image files of a class folder (recursively, sorted by path) and how many other files it
// holds.
std::vector<std::string> list_images(const std::string& class_dir, int64_t* other_files = nullptr);

}  // namespace okd::data
