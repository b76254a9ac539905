"""Everything that turns run journals into reports: the only importer of allure and matplotlib."""
