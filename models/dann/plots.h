#pragma once
// Scatter plots of learned features as plain SVG (the thesis shows t-SNE embeddings of source
// and target features before and after adaptation; here a 2-D PCA, models/dann/model.h
// pca_2d). Panels sit side by side, each with its own axes scaled to its points; points are
// coloured by group (source / target) with a legend.
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg::dann {

struct ScatterPanel {
  std::string title;
  Tensor xy;               // [N, 2], any floating dtype, CPU
  std::vector<int> group;  // N entries, index into the group labels
};

std::string svg_scatter(const std::vector<ScatterPanel>& panels, const std::vector<std::string>& groups,
                        const std::string& title = "");
// Written atomically (temporary file, rename).
void write_svg_scatter(const std::string& path, const std::vector<ScatterPanel>& panels,
                       const std::vector<std::string>& groups, const std::string& title = "");

}  // namespace cvg::dann
