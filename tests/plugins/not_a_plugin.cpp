// A shared library without the mathpool entry point.
extern "C" int not_a_plugin_answer() { return 42; }
