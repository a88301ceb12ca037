// The `milkit/nn` entry point: the layers and tensor ops a plugin may build on. One index, so plugins never
// import files under src/core/nn/ by path (those paths are not part of the package and may move).
// Helpers that only one plugin family uses live next to that family (plugins/<kind>/_shared/), not here.
// The tfjs instance milkit runs on, for plugins that want no direct tfjs dependency of their own.
export * as tf from '@tensorflow/tfjs';
export * from '../core/nn/module.js';
export * from '../core/nn/containers.js';
export * from '../core/nn/init.js';
export * from '../core/nn/layers.js';
export * from '../core/nn/layer-norm.js';
export * from '../core/nn/batchnorm.js';
export * from '../core/nn/conv.js';
export * from '../core/nn/im2col-conv.js';
export * from '../core/nn/depthwise-conv.js';
export * from '../core/nn/attention.js';
export * from '../core/nn/nystrom.js';
export * from '../core/nn/pooling.js';
export * from '../core/nn/chebyshev.js';
export * from '../core/nn/mobilenet-v4.js';
export * from '../core/nn/bce.js';
export * from '../core/nn/gradients.js';
export * from '../core/nn/no-grad.js';
export * from '../core/nn/keep-rate.js';
export * from '../core/nn/checkpoint.js';
export * from '../core/nn/backward-release.js';
export * from '../core/nn/chunked-softmax.js';
export * from '../core/nn/chunked-translayer.js';
export * from '../core/nn/heap-slice.js';
