// Stands in for uPlot when the build had no web/node_modules.
window.uPlot = null;
