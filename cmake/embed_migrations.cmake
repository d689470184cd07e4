# Writes OUT: a C++ file defining datahub::persistence::embedded_migrations(), one entry per
# migrations/NNN_name.sql file in DIR, in file-name order.
file(GLOB files ${DIR}/*.sql)
list(SORT files)
set(body "")
foreach(f ${files})
  get_filename_component(name ${f} NAME)
  file(READ ${f} sql)
  string(APPEND body "      {\"${name}\", R\"datahub_sql(${sql})datahub_sql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp "// Generated from migrations/*.sql by cmake/embed_migrations.cmake; do not edit.
#include \"persistence/migration_source.hpp\"

namespace datahub::persistence {

const std::vector<migration_source>& embedded_migrations() {
  static const std::vector<migration_source> all{
${body}  };
  return all;
}

}  // namespace datahub::persistence
")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
